"""Closure builders for the condition language (see :mod:`elvwatch.rules.expr`).

Each builder returns a function of the environment; ``None`` is the unknown value and
spreads as the language says.  The shapes rules use most get closures without nested
calls (``name > const``, ``abs(name)``, ``coalesce(name, const)``), since every
observation evaluates a few of them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

Scalar = float | str | bool
Env = Mapping[str, Scalar]
# ``None`` is the unknown value: environments never hold None.
Node = Callable[[Env], Scalar | None]


def truth(value: Scalar | None) -> bool | None:
    return None if value is None else bool(value)


COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}


def arith(op: str, left: Node, right: Node) -> Node:
    fn = ARITH[op]

    def compute(env: Env) -> Scalar | None:
        a, b = left(env), right(env)
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return None
        if op == "/" and b == 0:
            return None
        return fn(a, b)
    return compute


def compare(op: str, left: Node, right: Node, const: Scalar | None,
             name: str | None) -> Node:
    fn = COMPARE[op]
    if name is not None and const is not None:
        # The common shape ``some.value > 60``: one dict lookup, no nested calls.
        def name_const(env: Env) -> Scalar | None:
            a = env.get(name)
            if a is None:
                return None
            try:
                return bool(fn(a, const))
            except TypeError:
                return None
        return name_const
    if const is not None:
        def node_const(env: Env) -> Scalar | None:
            a = left(env)
            if a is None:
                return None
            try:
                return bool(fn(a, const))
            except TypeError:
                return None
        return node_const

    def general(env: Env) -> Scalar | None:
        a = left(env)
        if a is None:
            return None
        b = right(env)
        if b is None:
            return None
        try:
            return bool(fn(a, b))
        except TypeError:
            return None
    return general


def and_(left: Node, right: Node) -> Node:
    def both(env: Env) -> Scalar | None:
        a = truth(left(env))
        if a is False:
            return False
        b = truth(right(env))
        if b is False:
            return False
        return None if a is None or b is None else True
    return both


def or_(left: Node, right: Node) -> Node:
    def either(env: Env) -> Scalar | None:
        a = truth(left(env))
        if a is True:
            return True
        b = truth(right(env))
        if b is True:
            return True
        return None if a is None or b is None else False
    return either


def not_(inner: Node) -> Node:
    def negate(env: Env) -> Scalar | None:
        a = inner(env)
        return None if a is None else not a
    return negate


def function(name: str, args: list[Node], names: list[str | None],
              consts: list[Scalar | None]) -> Node:
    """Build a call; the shapes rules use most (``abs(name)``, ``coalesce(name, 0)``,
    two-argument ``min``/``max``) get closures without nested calls."""
    if name == "abs":
        arg, arg_name = args[0], names[0]
        if arg_name is not None:
            def absolute_name(env: Env) -> Scalar | None:
                a = env.get(arg_name)
                return abs(a) if isinstance(a, int | float) else None
            return absolute_name

        def absolute(env: Env) -> Scalar | None:
            a = arg(env)
            return abs(a) if isinstance(a, int | float) else None
        return absolute
    if name == "startswith":
        text, prefix = args

        def starts(env: Env) -> Scalar | None:
            a, b = text(env), prefix(env)
            if not isinstance(a, str) or not isinstance(b, str):
                return None
            return a.startswith(b)
        return starts
    if name == "coalesce":
        if len(args) == 2 and names[0] is not None and consts[1] is not None:
            first, default = names[0], consts[1]

            def name_or_default(env: Env) -> Scalar | None:
                a = env.get(first)
                return default if a is None else a
            return name_or_default

        def first_known(env: Env) -> Scalar | None:
            for arg in args:
                a = arg(env)
                if a is not None:
                    return a
            return None
        return first_known
    pick = min if name == "min" else max
    if len(args) == 2:
        one, two = args

        def extreme_pair(env: Env) -> Scalar | None:
            a, b = one(env), two(env)
            if a is None or b is None or isinstance(a, str) or isinstance(b, str):
                return None
            return pick(a, b)
        return extreme_pair

    def extreme(env: Env) -> Scalar | None:
        values = [a(env) for a in args]
        if any(v is None or isinstance(v, str) for v in values):
            return None
        return pick(values)  # type: ignore[type-var]
    return extreme
