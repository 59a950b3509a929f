"""``dlhw-autodiff``: the autodiff example of the catalogue, both modes, every step printed."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from dlhw.theory.autodiff import catalogue_e, format_matrix, jacobians_close, torch_jacobian, trace


def main(argv: Sequence[str] | None = None) -> int:
    """Differentiate the autodiff example in both modes, print the traces and check vs torch."""
    parser = argparse.ArgumentParser(
        prog="dlhw-autodiff",
        description="Forward- and reverse-mode autodiff of y1 = exp(2 x2) + x1 sin(3 x2^2), "
        "y2 = x1 x2 + sigmoid(x2), checked against torch.autograd.",
    )
    parser.add_argument("--x", type=float, nargs=2, default=[2.0, 1.0], metavar=("X1", "X2"))
    parser.add_argument(
        "--dot", metavar="FILE", help="write the graph as Graphviz DOT ('-' = stdout)"
    )
    args = parser.parse_args(argv)
    if not all(math.isfinite(v) for v in args.x):
        parser.error("--x values must be finite numbers")

    out = sys.stdout
    graph = trace(catalogue_e, 2)
    print(graph.to_text(), end="\n\n", file=out)
    values = graph.forward(args.x, out=out)
    print(file=out)
    if args.dot == "-":
        print(graph.to_dot(), end="\n\n", file=out)
    elif args.dot:
        with open(args.dot, "w") as fh:
            fh.write(graph.to_dot() + "\n")
        print(f"DOT graph written to {args.dot}\n", file=out)
    jf = graph.jacobian_forward(out=out)
    print(file=out)
    jr = graph.jacobian_reverse(out=out)
    print(file=out)

    x1, x2 = args.x
    print(f"x = ({x1:g}, {x2:g}):  y1 = {values[0]:.6f}, y2 = {values[1]:.6f}", file=out)
    print("Jacobian [dy_i/dx_j] (forward mode):", format_matrix(jf), sep="\n", file=out)
    print("Jacobian [dy_i/dx_j] (reverse mode):", format_matrix(jr), sep="\n", file=out)

    tv, tj = torch_jacobian(catalogue_e, args.x)
    checks = [
        ("forward mode == reverse mode", jacobians_close(jf, jr)),
        ("values == torch", jacobians_close([values], [tv])),
        ("forward mode == torch.autograd.functional.jacobian", jacobians_close(jf, tj)),
        ("reverse mode == torch.autograd.functional.jacobian", jacobians_close(jr, tj)),
    ]
    for what, ok in checks:
        print(f"{'OK' if ok else 'MISMATCH'}: {what}", file=out)
    if not all(ok for _, ok in checks):
        print("torch Jacobian:", format_matrix(tj), sep="\n", file=out)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
