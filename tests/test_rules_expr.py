"""The rule condition language: values, three-valued logic, and errors with columns."""

from __future__ import annotations

import pytest

from elvwatch.rules.expr import ExprError, compile_expr


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("abs(onvif.clock_offset_seconds) > 60", {"onvif.clock_offset_seconds": -75.0}, True),
    ("abs(onvif.clock_offset_seconds) > 60", {"onvif.clock_offset_seconds": 12.0}, False),
    ("snmp.ups.on_battery == 1", {"snmp.ups.on_battery": 1.0}, True),
    ("snmp.ups.on_battery == true", {"snmp.ups.on_battery": 1.0}, True),
    ('status == "down"', {"status": "down"}, True),
    ("state == 'down'", {"state": "up"}, False),
    ("60 < mqtt.age_seconds", {"mqtt.age_seconds": 61.0}, True),
    ("-5 > x", {"x": -6.0}, True),
    ("x + 2 * 3 == 7", {"x": 1.0}, True),
    ("(x + 2) * 3 == 9", {"x": 1.0}, True),
    ("x / 4 - 1 >= 0.5", {"x": 6.0}, True),
    ("min(a, b, 3) == 1 and max(a, b) == 2", {"a": 1.0, "b": 2.0}, True),
    ("not a > 1 or b", {"a": 5.0, "b": 0.0}, False),
    ("exists(info.serial)", {"info.serial": "X1"}, True),
    ("exists(info.serial)", {}, False),
    ("coalesce(snmp.rebooted, onvif.rebooted) == 1", {"onvif.rebooted": 1.0}, True),
    ("coalesce(snmp.rebooted, 0) == 0", {}, True),
    ("x == 1e3", {"x": 1000.0}, True),
    ('startswith(error, "authentication")', {"error": "authentication: rejected"}, True),
    ('startswith(error, "authentication")', {"error": ""}, False),
    ('snmp.if.oper_up{ifindex="7",port="ge1/0/7"} == 0',
     {'snmp.if.oper_up{ifindex="7",port="ge1/0/7"}': 0.0}, True),
    ("sum_of(snmp.poe.fault) > 0", {"sum_of(snmp.poe.fault)": 2.0}, True),
])
def test_conditions_evaluate(text: str, env: dict[str, float | str], expected: bool) -> None:
    assert compile_expr(text).evaluate(env) is expected


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("x > 1", {}, None),                       # missing value: unknown
    ("x > 1 and y > 1", {"x": 5.0}, None),
    ("x > 1 and y > 1", {"x": 0.0}, False),    # false and unknown = false
    ("x > 1 or y > 1", {"x": 5.0}, True),      # true or unknown = true
    ("x > 1 or y > 1", {"x": 0.0}, None),
    ("not x", {}, None),
    ("abs(x) > 1", {"x": "text"}, None),       # wrong type: unknown, not an exception
    ('x < "a"', {"x": 1.0}, None),
    ("x / y > 1", {"x": 1.0, "y": 0.0}, None),  # division by zero: unknown
    ("max(x, y) > 1", {"x": 5.0}, None),
])
def test_missing_or_unusable_values_make_the_condition_unknown(
        text: str, env: dict[str, float | str], expected: bool | None) -> None:
    assert compile_expr(text).evaluate(env) is expected


def test_compiled_condition_lists_the_names_it_reads() -> None:
    expr = compile_expr("abs(onvif.clock_offset_seconds) > 60 and exists(info.serial)")
    assert expr.names == {"onvif.clock_offset_seconds", "info.serial"}


@pytest.mark.parametrize(("text", "column", "message"), [
    ("x >", 4, "expected a value, got end of condition"),
    ("x > > 2", 5, "expected a value, got '>'"),
    ("abs(x", 6, "expected ')', got end of condition"),
    ("x == 'down", 6, "unterminated string"),
    ("x @ 2", 3, "unexpected character '@'"),
    ("a < b < c", 7, "comparisons do not chain; join them with 'and'"),
    ("and x", 1, "expected a value, got 'and'"),
    ("x > 1 y", 7, "unexpected 'y'"),
    ("eval(x)", 1, "unknown function 'eval' (known: abs, coalesce, count_of, exists, max, "
                   "max_of, min, min_of, startswith, sum_of)"),
    ("__import__('os')", 1, "unknown function '__import__' (known: abs, coalesce, count_of, "
                            "exists, max, max_of, min, min_of, startswith, sum_of)"),
    ('sum_of(x{a="1"}) > 0', 8, "sum_of() takes one value name without labels"),
    ("startswith(error) > 0", 1, "startswith() takes two arguments"),
    ("exists(1)", 8, "exists() takes one value name"),
    ("abs(x, y) > 1", 1, "abs() takes one argument"),
    ("max() > 1", 1, "max() needs at least one argument"),
    ("-'a' > 1", 1, "'-' needs a number"),
    ("", 1, "empty condition"),
])
def test_bad_conditions_fail_with_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(text)
    assert (info.value.column, info.value.message) == (column, message)
    assert str(info.value) == f"column {column}: {message}"


def test_deep_nesting_and_long_text_are_refused() -> None:
    with pytest.raises(ExprError, match="nested deeper than"):
        compile_expr("(" * 100 + "x" + ")" * 100)
    with pytest.raises(ExprError, match="longer than"):
        compile_expr("x > 1 and " * 300 + "x > 1")
    with pytest.raises(ExprError, match="nested deeper than"):
        compile_expr("not " * 100 + "x")
