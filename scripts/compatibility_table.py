"""Regenerate docs/compatibility.md (what goes with what, and every key) from the shape contracts and the schema.

    .venv/bin/python scripts/compatibility_table.py          # write docs/compatibility.md
    .venv/bin/python scripts/compatibility_table.py --check  # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlhw.config.compat import compatibility_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "compatibility.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args()
    text = compatibility_table()
    if args.check:
        same = DOC.is_file() and DOC.read_text() == text
        print(f"{DOC.name} is {'up to date' if same else 'out of date: run scripts/compatibility_table.py'}")
        return 0 if same else 1
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
