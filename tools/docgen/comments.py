"""Descriptions for config fields from the comments beside them in the model's source.

The config models explain their fields with ``#`` comments (why a field exists, what
its value means) rather than ``Field(description=…)``.  The published JSON Schema and
the configuration reference carry those words, so editors show them on hover and the
reference cannot drift from the code: the comment block right above a field, or the
comment at the end of its line, is its description.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
from functools import cache

from pydantic import BaseModel


@cache
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name → the comment describing it, for the fields of ``model`` itself."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):  # no source (a dynamic model): no comments to read
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    code_lines = {n for n, line in enumerate(source.splitlines(), 1)
                  if line.strip() and not line.strip().startswith("#")}
    found: dict[str, str] = {}
    (cls,) = ast.parse(source).body
    assert isinstance(cls, ast.ClassDef)
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line in comments and line not in code_lines:
            above.insert(0, comments[line])
            line -= 1
        trailing = [comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)
                    if n in comments and n in code_lines]
        text = " ".join([*above, *trailing]).strip()
        if text:
            found[node.target.id] = text
    return found
