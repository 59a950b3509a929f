"""A tiny automatic-differentiation engine over scalar elementary operations (autodiff).

``trace(f, n)`` runs a Python function of n scalars on ``Node`` objects (operator overloading), which
records its computational graph instead of computing numbers. ``Graph.forward`` then evaluates it
node by node, ``Graph.jacobian_forward`` differentiates it in forward mode (tangent propagation, one
pass per input) and ``Graph.jacobian_reverse`` in reverse mode (one adjoint sweep per output); each
can print a readable trace of every intermediate step.

The elementary functions (``sin``, ``exp``, ``sigmoid``, ...) also accept floats and torch tensors,
so one definition of f serves the engine, plain math and ``torch.autograd`` alike.

CLI: ``dlhw-autodiff [--x 2 1] [--dot FILE|-]`` differentiates the autodiff example
y1 = exp(2 x2) + x1 sin(3 x2^2), y2 = x1 x2 + sigmoid(x2) and checks both modes against torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

__all__ = [
    "Node",
    "Graph",
    "trace",
    "sin",
    "cos",
    "exp",
    "log",
    "square",
    "sqrt",
    "sigmoid",
    "tanh",
    "catalogue_e",
]


def _sig(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))


# name -> (arity, value(inputs, k), local partials(inputs, out, k), formula for the trace)
# k is the constant of "pow" (exponent) and "const" (value); out is the node's own value.
_OPS: dict[str, tuple[int, Callable, Callable, str]] = {
    "add": (2, lambda a, b, k: a + b, lambda a, b, o, k: (1.0, 1.0), "{0} + {1}"),
    "sub": (2, lambda a, b, k: a - b, lambda a, b, o, k: (1.0, -1.0), "{0} - {1}"),
    "mul": (2, lambda a, b, k: a * b, lambda a, b, o, k: (b, a), "{0} * {1}"),
    "div": (2, lambda a, b, k: a / b, lambda a, b, o, k: (1.0 / b, -a / (b * b)), "{0} / {1}"),
    "neg": (1, lambda a, k: -a, lambda a, o, k: (-1.0,), "-{0}"),
    "pow": (1, lambda a, k: a**k, lambda a, o, k: (k * a ** (k - 1),), "{0} ^ {k:g}"),
    "square": (1, lambda a, k: a * a, lambda a, o, k: (2.0 * a,), "square({0})"),
    "sqrt": (1, lambda a, k: math.sqrt(a), lambda a, o, k: (0.5 / o,), "sqrt({0})"),
    "sin": (1, lambda a, k: math.sin(a), lambda a, o, k: (math.cos(a),), "sin({0})"),
    "cos": (1, lambda a, k: math.cos(a), lambda a, o, k: (-math.sin(a),), "cos({0})"),
    "exp": (1, lambda a, k: math.exp(a), lambda a, o, k: (o,), "exp({0})"),
    "log": (1, lambda a, k: math.log(a), lambda a, o, k: (1.0 / a,), "log({0})"),
    "sigmoid": (1, lambda a, k: _sig(a), lambda a, o, k: (o * (1.0 - o),), "sigmoid({0})"),
    "tanh": (1, lambda a, k: math.tanh(a), lambda a, o, k: (1.0 - o * o,), "tanh({0})"),
}


class Node:
    """One vertex of the computational graph: an input, a constant or an elementary operation."""

    __slots__ = ("graph", "id", "op", "inputs", "k", "name", "value", "partials")

    def __init__(
        self, graph: Graph, op: str, inputs: tuple[Node, ...] = (), k: float = 0.0, name: str = ""
    ):
        self.graph, self.op, self.inputs, self.k, self.name = graph, op, inputs, k, name
        self.value: float | None = None
        self.partials: tuple[float, ...] = ()
        self.id = len(graph.nodes)
        graph.nodes.append(self)

    @property
    def label(self) -> str:
        return f"v{self.id}"

    def describe(self) -> str:
        """Symbolic right-hand side, e.g. ``sin(v3)`` or ``input x1``."""
        if self.op == "input":
            return f"input {self.name}"
        if self.op == "const":
            return f"const {self.k:g}"
        return _OPS[self.op][3].format(*(i.label for i in self.inputs), k=self.k)

    def _lift(self, other: Node | float) -> Node:
        if isinstance(other, Node):
            if other.graph is not self.graph:
                raise ValueError("cannot combine nodes of different graphs")
            return other
        return self.graph.const(float(other))

    def _op(self, op: str, *others: Node | float, k: float = 0.0) -> Node:
        return Node(self.graph, op, (self, *(self._lift(o) for o in others)), k=k)

    def __add__(self, o):
        return self._op("add", o)

    def __radd__(self, o):
        return self._lift(o)._op("add", self)

    def __sub__(self, o):
        return self._op("sub", o)

    def __rsub__(self, o):
        return self._lift(o)._op("sub", self)

    def __mul__(self, o):
        return self._op("mul", o)

    def __rmul__(self, o):
        return self._lift(o)._op("mul", self)

    def __truediv__(self, o):
        return self._op("div", o)

    def __rtruediv__(self, o):
        return self._lift(o)._op("div", self)

    def __neg__(self):
        return self._op("neg")

    def __pos__(self):
        return self

    def __pow__(self, k):
        if isinstance(k, Node):
            return exp(k * log(self))  # a^b = exp(b log a), for a > 0
        if k == 2:
            return self._op("square")
        return self._op("pow", k=float(k))

    def __rpow__(self, base):
        return exp(self * math.log(base))  # c^v = exp(v log c), for a constant c > 0

    def __repr__(self) -> str:
        return f"Node({self.label} = {self.describe()}, value={self.value})"


def _elementary(op: str, torch_name: str) -> Callable:
    def fn(a):
        if isinstance(a, Node):
            return a._op(op)
        if type(a).__module__.startswith("torch"):
            import torch

            return getattr(torch, torch_name)(a)
        return _OPS[op][1](float(a), 0.0)

    fn.__name__ = op
    fn.__doc__ = f"Elementary ``{op}`` of a Node (records it), a float or a torch tensor."
    return fn


sin = _elementary("sin", "sin")
cos = _elementary("cos", "cos")
exp = _elementary("exp", "exp")
log = _elementary("log", "log")
square = _elementary("square", "square")
sqrt = _elementary("sqrt", "sqrt")
sigmoid = _elementary("sigmoid", "sigmoid")
tanh = _elementary("tanh", "tanh")


@dataclass
class Graph:
    """Nodes in creation order (a topological order) and the output nodes."""

    nodes: list[Node] = field(default_factory=list)
    inputs: list[Node] = field(default_factory=list)
    outputs: list[Node] = field(default_factory=list)

    def const(self, value: float) -> Node:
        return Node(self, "const", k=value)

    def input(self, name: str) -> Node:
        node = Node(self, "input", name=name)
        self.inputs.append(node)
        return node

    # ------------------------------------------------------------------ passes

    def forward(self, x: Sequence[float], out: TextIO | None = None) -> list[float]:
        """Evaluate every node in order (and its local partial derivatives); return output values."""
        if len(x) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} input values, got {len(x)}")
        _say(out, "Forward pass (evaluation):")
        values = dict(zip((n.id for n in self.inputs), x, strict=True))
        for n in self.nodes:
            if n.op == "input":
                n.value, n.partials = float(values[n.id]), ()
            elif n.op == "const":
                n.value, n.partials = n.k, ()
            else:
                _, f, df, _ = _OPS[n.op]
                args = [i.value for i in n.inputs]
                n.value = float(f(*args, n.k))
                n.partials = tuple(float(p) for p in df(*args, n.value, n.k))
            _say(out, f"  {n.label:>4} = {n.describe():<22} = {n.value: .6g}")
        return [o.value for o in self.outputs]

    def jacobian_forward(self, out: TextIO | None = None) -> list[list[float]]:
        """Forward mode: propagate tangents dv/dx_j through the graph, one pass per input j."""
        self._need_values()
        cols = []
        for j, xj in enumerate(self.inputs):
            _say(
                out,
                f"Forward mode, pass {j + 1}: tangents v' = dv/d{xj.name}, seed {xj.label}' = 1",
            )
            dot: dict[int, float] = {}
            for n in self.nodes:
                if n.op == "input":
                    dot[n.id] = 1.0 if n is xj else 0.0
                    expl = "seed"
                elif n.op == "const":
                    dot[n.id] = 0.0
                    expl = "constant"
                else:
                    terms = [(p, dot[i.id]) for p, i in zip(n.partials, n.inputs, strict=True)]
                    dot[n.id] = sum(p * t for p, t in terms)
                    expl = " + ".join(
                        f"{p:.4g}*{i.label}'" for (p, _), i in zip(terms, n.inputs, strict=True)
                    )
                tangent = n.label + "'"
                _say(out, f"  {tangent:>5} = {expl:<34} = {dot[n.id]: .6g}")
            cols.append([dot[o.id] for o in self.outputs])
        return [[cols[j][i] for j in range(len(self.inputs))] for i in range(len(self.outputs))]

    def jacobian_reverse(self, out: TextIO | None = None) -> list[list[float]]:
        """Reverse mode: sweep adjoints dy_i/dv from output i back to the inputs, one sweep per output."""
        self._need_values()
        rows = []
        for i, yi in enumerate(self.outputs):
            _say(
                out,
                f"Reverse mode, sweep {i + 1}: adjoints adj(v) = dy{i + 1}/dv, seed adj({yi.label}) = 1",
            )
            adj = [0.0] * len(self.nodes)
            adj[yi.id] = 1.0
            for n in reversed(self.nodes[: yi.id + 1]):
                if not n.inputs or adj[n.id] == 0.0:
                    continue
                for p, v in zip(n.partials, n.inputs, strict=True):
                    if v.op == "const":
                        continue
                    adj[v.id] += p * adj[n.id]
                    _say(
                        out,
                        f"  adj({v.label}) += adj({n.label}) * d{n.label}/d{v.label}"
                        f" = {adj[n.id]:.4g} * {p:.4g}  -> {adj[v.id]: .6g}",
                    )
            rows.append([adj[x.id] for x in self.inputs])
            _say(
                out,
                "  " + ", ".join(f"d y{i + 1}/d {x.name} = {adj[x.id]:.6g}" for x in self.inputs),
            )
        return rows

    def _need_values(self) -> None:
        if any(n.value is None for n in self.nodes):
            raise RuntimeError("run Graph.forward(x) before differentiating")

    # ------------------------------------------------------------------ display

    def to_text(self) -> str:
        """One line per node: id, operation, inputs; outputs marked."""
        outs = {o.id: f"y{k + 1}" for k, o in enumerate(self.outputs)}
        lines = [f"Computational graph ({len(self.nodes)} nodes):"]
        for n in self.nodes:
            mark = f"   -> {outs[n.id]}" if n.id in outs else ""
            lines.append(f"  {n.label:>4} = {n.describe()}{mark}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT: one vertex per node (operation and value), edges from inputs to users."""
        outs = {o.id: f"y{k + 1}" for k, o in enumerate(self.outputs)}
        lines = ["digraph G {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for n in self.nodes:
            what = n.name if n.op == "input" else (f"{n.k:g}" if n.op == "const" else n.op)
            val = "" if n.value is None else f"\\n= {n.value:.4g}"
            extra = ", shape=ellipse" if n.op == "input" else ""
            extra += ", style=bold" if n.id in outs else ""
            label = f"{n.label}: {what}{val}" + (f"\\n({outs[n.id]})" if n.id in outs else "")
            lines.append(f'  {n.label} [label="{label}"{extra}];')
        for n in self.nodes:
            for i in n.inputs:
                lines.append(f"  {i.label} -> {n.label};")
        lines.append("}")
        return "\n".join(lines)


def _say(out: TextIO | None, line: str) -> None:
    if out is not None:
        print(line, file=out)


def trace(
    f: Callable[..., Node | Sequence[Node]], n_inputs: int, names: Sequence[str] | None = None
) -> Graph:
    """Record the graph of ``f(x1, ..., xn)`` (returning one value or a tuple of them)."""
    g = Graph()
    names = list(names) if names is not None else [f"x{i + 1}" for i in range(n_inputs)]
    result = f(*(g.input(nm) for nm in names))
    outs = list(result) if isinstance(result, list | tuple) else [result]
    for k, o in enumerate(outs):
        if not isinstance(o, Node):  # a constant output: record it as a node
            outs[k] = g.const(float(o))
    g.outputs = outs
    return g


def catalogue_e(x1, x2):
    """The autodiff example: y1 = exp(2 x2) + x1 sin(3 x2^2), y2 = x1 x2 + sigmoid(x2)."""
    return exp(2 * x2) + x1 * sin(3 * x2**2), x1 * x2 + sigmoid(x2)


def torch_jacobian(f: Callable, x: Sequence[float]) -> tuple[list[float], list[list[float]]]:
    """Values and Jacobian of the same f by ``torch.autograd.functional.jacobian`` (float64)."""
    import torch

    def g(t):
        y = f(*t.unbind())
        return torch.stack(list(y)) if isinstance(y, list | tuple) else y.reshape(1)

    xt = torch.tensor([float(v) for v in x], dtype=torch.float64)
    return g(xt).tolist(), torch.autograd.functional.jacobian(g, xt).tolist()


def jacobians_close(a: list[list[float]], b: list[list[float]], tol: float = 1e-9) -> bool:
    return all(
        math.isclose(u, v, rel_tol=tol, abs_tol=tol)
        for ra, rb in zip(a, b, strict=True)
        for u, v in zip(ra, rb, strict=True)
    )


def format_matrix(m: list[list[float]]) -> str:
    return "\n".join("  [" + ", ".join(f"{v: .6f}" for v in row) + "]" for row in m)
