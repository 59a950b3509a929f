"""``dlhw-report PATH``: tables and plots for a run, a sweep or a folder of them."""

from __future__ import annotations

import argparse
import logging
import sys

from dlhw.errors import UserError
from dlhw.report.markdown import build_report


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``dlhw-report``."""
    parser = argparse.ArgumentParser(
        prog="dlhw-report",
        description="Tables and plots (Markdown + HTML + PNG) for a run directory, a sweep directory "
                    "or a folder of them.")
    parser.add_argument("path", help="run directory, sweep directory or a folder of them")
    parser.add_argument("--out", help="where to write report.md (default: PATH)")
    parser.add_argument("--title", help="report title")
    args = parser.parse_args(argv)
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    try:
        path = build_report(args.path, args.out, args.title)
    except UserError as exc:
        print(f"dlhw: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"Report: {path}\nHTML:   {path.with_suffix('.html')}")


if __name__ == "__main__":
    main()
