"""Reading a JSON request body: malformed or too deeply nested is the client's error.

``json.loads`` recurses per nesting level: a body of 100,000 ``[`` raises RecursionError,
which would answer 500; and a structure a few hundred levels deep that does parse would
recurse again in whatever walks it next.  No body the API takes is more than a few
levels deep."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

MAX_DEPTH = 32


class BodyError(ValueError):
    """The body is not JSON the API can take; the message says why (answer 400)."""


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BodyError(_too_deep()) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise BodyError(f"the body is not JSON: {exc}") from None
    if depth(data) > MAX_DEPTH:
        raise BodyError(_too_deep())
    return data


def depth(data: Any) -> int:
    """How deeply ``data`` nests lists and objects (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _too_deep() -> str:
    return f"the JSON body is nested more than {MAX_DEPTH} levels deep"
