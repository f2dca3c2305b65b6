"""The rule condition language: small, safe, three-valued.  Never Python ``eval``.

Grammar (lowest precedence first)::

    expr  := or
    or    := and ("or" and)*
    and   := not ("and" not)*
    not   := "not" not | cmp
    cmp   := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)?
    sum   := term (("+" | "-") term)*
    term  := unary (("*" | "/") unary)*
    unary := "-" unary | atom
    atom  := NUMBER | STRING | "true" | "false" | NAME | NAME "(" args ")" | "(" expr ")"

Names are dotted identifiers (``onvif.clock_offset_seconds``, ``snmp.ups.on_battery``),
optionally with the exact labels of one row (``snmp.if.oper_up{ifindex="7",port="g7"}``),
looked up in the environment the engine builds per device; functions are ``abs``,
``min``, ``max``, ``coalesce`` (first known argument), ``exists(name)``,
``startswith(text, prefix)`` and the family aggregates ``sum_of``, ``max_of``,
``min_of``, ``count_of`` (over every labelled row of a name: ``sum_of(snmp.poe.fault)``).

A missing name is *unknown*, and unknown spreads: ``x > 3`` with no ``x`` is unknown,
``false and unknown`` is false, ``true or unknown`` is true, anything else with an
unknown operand is unknown.  Type mismatches (``"a" < 1``) and division by zero are
unknown too.  An unknown condition neither fires nor clears a fault: a probe that
could not read a value says nothing about the fault.

:func:`compile_expr` checks the text once (at config load) and raises
:class:`ExprError` with the 1-based column of the problem; the result is a tree of
closures, so evaluating it walks no syntax at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from elvwatch.rules.exprnodes import (
    COMPARE,
    Env,
    Node,
    Scalar,
    and_,
    arith,
    compare,
    function,
    not_,
    or_,
)

__all__ = ["AGGREGATES", "Env", "Expr", "ExprError", "Node", "Scalar", "aggregate_key",
           "compile_expr"]

MAX_LENGTH = 2000
MAX_DEPTH = 40
KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
FUNCTIONS = frozenset({"abs", "min", "max", "coalesce", "exists", "startswith",
                       "sum_of", "max_of", "min_of", "count_of"})
# Aggregates over a labelled family (``sum_of(snmp.disk.failed)`` covers every
# ``snmp.disk.failed{...}``): the engine computes them per observation into the
# environment under :func:`aggregate_key`, the closure only looks that up.
AGGREGATES = frozenset({"sum_of", "max_of", "min_of", "count_of"})


def aggregate_key(function: str, family: str) -> str:
    return f"{function}({family})"


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>"[^"\\]*"|'[^'\\]*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*
             (?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?)
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|,)
""", re.VERBOSE)


class ExprError(ValueError):
    """A condition that cannot be compiled; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number string name op end
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = "unterminated string" if ch in "'\"" else f"unexpected character {ch!r}"
            raise ExprError(hint, pos + 1)
        kind = m.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, m.group(), pos + 1))
        pos = m.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled condition: ``evaluate(env)`` is True, False or None (unknown)."""

    text: str
    names: frozenset[str]
    root: Node
    # (aggregate function, family name) pairs the condition reads.
    aggregates: frozenset[tuple[str, str]] = frozenset()

    def evaluate(self, env: Env) -> bool | None:
        value = self.root(env)
        return None if value is None else bool(value)

    def __call__(self, env: Env) -> bool | None:
        return self.evaluate(env)


def compile_expr(text: str) -> Expr:
    """Parse and compile ``text``; raise :class:`ExprError` with the column."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    if not text.strip():
        raise ExprError("empty condition", 1)
    parser = _Parser(_tokenize(text))
    root = parser.parse()
    return Expr(text, frozenset(parser.names), root, frozenset(parser.aggregates))


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.names: set[str] = set()
        self.aggregates: set[tuple[str, str]] = set()
        # Set by _atom for the last name / literal parsed, to spot ``name OP const``.
        self.last_name: str | None = None
        self.last_const: Scalar | None = None

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def _next(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _expect(self, text: str) -> _Token:
        tok = self.tok
        if tok.text != text or tok.kind not in ("op",):
            raise ExprError(f"expected {text!r}, got {_describe(tok)}", tok.column)
        return self._next()

    def parse(self) -> Node:
        node = self._or()
        if self.tok.kind != "end":
            raise ExprError(f"unexpected {_describe(self.tok)}", self.tok.column)
        return node

    def _or(self) -> Node:
        node = self._and()
        while self.tok.kind == "name" and self.tok.text == "or":
            self._next()
            node = or_(node, self._and())
            self._clear_simple()
        return node

    def _and(self) -> Node:
        node = self._not()
        while self.tok.kind == "name" and self.tok.text == "and":
            self._next()
            node = and_(node, self._not())
            self._clear_simple()
        return node

    def _not(self) -> Node:
        if self.tok.kind == "name" and self.tok.text == "not":
            self._next()
            node = not_(self._nested(self._not))
            self._clear_simple()
            return node
        return self._cmp()

    def _cmp(self) -> Node:
        left = self._sum()
        left_name, left_const = self._simple
        if self.tok.kind == "op" and self.tok.text in COMPARE:
            op = self._next().text
            right = self._sum()
            right_name, right_const = self._simple
            if self.tok.kind == "op" and self.tok.text in COMPARE:
                raise ExprError("comparisons do not chain; join them with 'and'",
                                self.tok.column)
            if right_const is not None:
                return compare(op, left, right, right_const, left_name)
            if left_const is not None:
                flipped = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
                return compare(flipped, right, left, left_const, right_name)
            return compare(op, left, right, None, None)
        return left

    @property
    def _simple(self) -> tuple[str | None, Scalar | None]:
        """(name, constant) of the operand just parsed, if it was a bare one."""
        name, const = self.last_name, self.last_const
        self.last_name = self.last_const = None
        return name, const

    def _sum(self) -> Node:
        node = self._term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self._next().text
            self._clear_simple()
            node = arith(op, node, self._term())
            self._clear_simple()
        return node

    def _term(self) -> Node:
        node = self._unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op = self._next().text
            self._clear_simple()
            node = arith(op, node, self._unary())
            self._clear_simple()
        return node

    def _clear_simple(self) -> None:
        self.last_name = self.last_const = None

    def _unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text == "-":
            minus = self._next()
            inner = self._nested(self._unary)
            name, const = self._simple
            if isinstance(const, int | float) and not isinstance(const, bool):
                self.last_name, self.last_const = None, -const
                value = -const
                return lambda env: value
            if isinstance(const, str | bool):
                raise ExprError("'-' needs a number", minus.column)
            del name
            return arith("-", lambda env: 0.0, inner)
        return self._atom()

    def _nested(self, parse: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"nested deeper than {MAX_DEPTH}", self.tok.column)
        try:
            return parse()
        finally:
            self.depth -= 1

    def _atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self._next()
            number = float(tok.text)
            self.last_name, self.last_const = None, number
            return lambda env: number
        if tok.kind == "string":
            self._next()
            text = tok.text[1:-1]
            self.last_name, self.last_const = None, text
            return lambda env: text
        if tok.kind == "op" and tok.text == "(":
            self._next()
            node = self._nested(self._or)
            self._expect(")")
            self._clear_simple()
            return node
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                self._next()
                flag = tok.text == "true"
                self.last_name, self.last_const = None, flag
                return lambda env: flag
            if tok.text in KEYWORDS:
                raise ExprError(f"expected a value, got {_describe(tok)}", tok.column)
            self._next()
            if self.tok.kind == "op" and self.tok.text == "(":
                return self._call(tok)
            name = tok.text
            self.names.add(name)
            self.last_name, self.last_const = name, None
            return lambda env: env.get(name)
        raise ExprError(f"expected a value, got {_describe(tok)}", tok.column)

    def _call(self, fn: _Token) -> Node:
        if fn.text not in FUNCTIONS:
            raise ExprError(f"unknown function {fn.text!r} (known: "
                            f"{', '.join(sorted(FUNCTIONS))})", fn.column)
        self._expect("(")
        if fn.text in AGGREGATES:
            arg = self.tok
            if arg.kind != "name" or arg.text in KEYWORDS or "{" in arg.text:
                raise ExprError(f"{fn.text}() takes one value name without labels",
                                arg.column)
            self._next()
            self._expect(")")
            self.names.add(arg.text)
            self.aggregates.add((fn.text, arg.text))
            self._clear_simple()
            key = aggregate_key(fn.text, arg.text)
            return lambda env: env.get(key)
        if fn.text == "exists":
            arg = self.tok
            if arg.kind != "name" or arg.text in KEYWORDS:
                raise ExprError("exists() takes one value name", arg.column)
            self._next()
            self._expect(")")
            name = arg.text
            self.names.add(name)
            self._clear_simple()
            return lambda env: name in env
        args: list[Node] = []
        names: list[str | None] = []
        consts: list[Scalar | None] = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            while True:
                self._clear_simple()
                args.append(self._nested(self._or))
                arg_name, const = self._simple
                names.append(arg_name)
                consts.append(const)
                if not (self.tok.kind == "op" and self.tok.text == ","):
                    break
                self._next()
        self._expect(")")
        self._clear_simple()
        if fn.text == "abs" and len(args) != 1:
            raise ExprError("abs() takes one argument", fn.column)
        if fn.text == "startswith" and len(args) != 2:
            raise ExprError("startswith() takes two arguments", fn.column)
        if not args:
            raise ExprError(f"{fn.text}() needs at least one argument", fn.column)
        return function(fn.text, args, names, consts)


def _describe(tok: _Token) -> str:
    return "end of condition" if tok.kind == "end" else repr(tok.text)
