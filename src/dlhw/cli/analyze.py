"""``dlhw-analyze conv|mlp|model``: convolution shapes, parameter and multiplication counts."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from dlhw.theory.counting import (
    build_model,
    check_mlp,
    conv_output_shape,
    count_multiplications,
    count_params,
    format_count,
    mlp_backprop_multiplications,
    mlp_param_count,
    path_enumeration_multiplications,
    shape_trace,
)


def _cmd_conv(a: argparse.Namespace) -> None:
    c, h, w = a.in_shape
    out = conv_output_shape(c, h, w, a.kernel, a.padding, a.stride, a.dilation, a.filters)
    kind = f"conv {a.filters} filters" if a.filters else "pooling"
    print(
        f"{kind}: kernel {a.kernel}, padding {a.padding}, stride {a.stride}, dilation {a.dilation}"
    )
    print(
        f"H_out = floor(({h} + 2*{a.padding} - {a.dilation}*({a.kernel}-1) - 1) / {a.stride}) + 1 = {out[1]}"
    )
    print(
        f"W_out = floor(({w} + 2*{a.padding} - {a.dilation}*({a.kernel}-1) - 1) / {a.stride}) + 1 = {out[2]}"
    )
    print(f"input {c}x{h}x{w} -> output {out[0]}x{out[1]}x{out[2]}")
    if a.filters:
        params = a.filters * (c * a.kernel * a.kernel + 1)
        mults = math.prod(out) * c * a.kernel * a.kernel
        print(
            f"parameters: {format_count(params)} (weights {a.filters}x{c}x{a.kernel}x{a.kernel} + {a.filters} biases)"
        )
        print(f"forward multiplications per sample: {format_count(mults)}")


def _cmd_mlp(a: argparse.Namespace) -> None:
    check_mlp(a.d, a.layers, a.units, a.classes)
    print(f"MLP: d={a.d} inputs, n={a.units} units per hidden layer, c={a.classes} classes")
    print("multiplications per sample and training iteration (forward + backward)")
    head = f"{'L':>3} {'params':>16} {'backprop':>16} {'path enumeration':>20} {'ratio':>12}"
    print(head)
    print("-" * len(head))
    for L in range(1, a.layers + 1):
        bp = mlp_backprop_multiplications(a.d, L, a.units, a.classes)
        pe = path_enumeration_multiplications(a.d, L, a.units, a.classes)
        ratio = format_count(pe // bp) + "x"
        print(
            f"{L:>3} {format_count(mlp_param_count(a.d, L, a.units, a.classes)):>16} {format_count(bp):>16} "
            f"{format_count(pe):>20} {ratio:>12}"
        )


def _cmd_model(a: argparse.Namespace) -> None:
    model, source = build_model(a.model, a.in_shape, a.classes, a.hidden, a.impl)
    print(f"model: {a.model} ({source}, impl={a.impl}), input {'x'.join(map(str, a.in_shape))}")
    print(f"{'layer':<24} {'type':<14} output shape")
    for name, kind, shape in shape_trace(model, a.in_shape):
        print(f"{name:<24} {kind:<14} {'x'.join(map(str, shape))}")
    mc = count_multiplications(model, a.in_shape)
    print(f"parameters: {format_count(count_params(model))}")
    print(
        "multiplications per sample (Linear/Conv2d; backward = weight grad + input grad if needed):"
    )
    for name, kind, fwd, bwd in mc.layers:
        print(f"  {name:<22} {kind:<8} forward {format_count(fwd):>12}  backward {format_count(bwd):>12}")
    print(f"forward: {format_count(mc.forward)}  backward: {format_count(mc.backward)}  total: {format_count(mc.total)}")


def main(argv: Sequence[str] | None = None) -> int:
    """``dlhw-analyze {conv,mlp,model}``: shapes, parameter and multiplication counts."""
    parser = argparse.ArgumentParser(prog="dlhw-analyze", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("conv", help="output shape of one convolution / pooling layer")
    p.add_argument(
        "--in", dest="in_shape", type=int, nargs=3, required=True, metavar=("C", "H", "W")
    )
    p.add_argument("--kernel", type=int, required=True)
    p.add_argument("--padding", type=int, default=0)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--dilation", type=int, default=1)
    p.add_argument("--filters", type=int, default=None, help="number of kernels (omit for pooling)")
    p.set_defaults(run=_cmd_conv, parser=p)

    p = sub.add_parser("mlp", help="MLP parameters, backprop vs path-enumeration multiplications")
    p.add_argument("--d", type=int, required=True, help="input dimension")
    p.add_argument("--layers", type=int, required=True, help="hidden layers L (table for 1..L)")
    p.add_argument("--units", type=int, required=True, help="units per hidden layer n")
    p.add_argument("--classes", type=int, required=True, help="outputs c")
    p.set_defaults(run=_cmd_mlp, parser=p)

    p = sub.add_parser("model", help="shape trace, parameters and multiplications of a model")
    p.add_argument("--model", choices=("lenet", "mlp"), required=True)
    p.add_argument("--in", dest="in_shape", type=int, nargs="+", required=True, metavar="DIM")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--hidden", type=int, nargs="*", default=[], help="MLP hidden widths")
    p.add_argument("--impl", choices=("torch", "scratch"), default="torch")
    p.set_defaults(run=_cmd_model, parser=p)

    args = parser.parse_args(argv)
    try:
        if args.cmd == "model":
            if (
                any(s < 1 for s in args.in_shape)
                or args.classes < 1
                or any(u < 1 for u in args.hidden)
            ):
                raise ValueError("sizes, classes and hidden widths must be positive")
            if args.model == "lenet" and len(args.in_shape) != 3:
                raise ValueError("lenet needs --in C H W")
        args.run(args)
    except (ValueError, RuntimeError) as e:  # bad sizes: one clear message, exit 2, no traceback
        print(f"{args.parser.prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
