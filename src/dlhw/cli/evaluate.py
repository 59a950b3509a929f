"""``dlhw-eval RUN_DIR [key=value ...] [ckpt_path=FILE]``: test a saved run's checkpoint."""

from __future__ import annotations

import sys

import dlhw.run.evaluate as evaluation
from dlhw.run.evaluate import EVAL_FILE, evaluate, parse_args


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``dlhw-eval``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(evaluation.__doc__)
        return
    from dlhw.run.runner import find_user_error

    try:
        run_dir, overrides, ckpt = parse_args(argv)
        out = evaluate(run_dir, overrides, ckpt)
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        print(f"dlhw: error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None
    acc, loss = out["test_acc"], out["test_loss"]
    print(f"Test accuracy: {acc * 100:.2f}%  test loss: {loss:.4f}  ({out['checkpoint']})")
    print(f"Saved: {run_dir / EVAL_FILE}")


if __name__ == "__main__":
    main()
