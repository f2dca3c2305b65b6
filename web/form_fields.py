"""Reading the pages' form fields: bounded text, yuan amounts, local times and dates,
each refused with a :class:`FormError` the page words in the site's language."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from elvwatch.web.page_views import tz_of
from elvwatch.web.view import PAGES_VIEW

FORM_LIMIT = 4000


class FormError(ValueError):
    """A form the page refuses before the ticket stage sees it; ``key`` words it."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def text_field(form: Mapping[str, Any], name: str, *, required: str | None = None,
               limit: int = FORM_LIMIT) -> str:
    value = str(form.get(name, "") or "").strip()[:limit]
    if required is not None and not value:
        raise FormError("field_required", field=required)
    return value


def yuan(text: str, what: str) -> int | None:
    """"12.5" yuan → 1250 fen; empty → not priced."""
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise FormError("bad_input", detail=f"{what}: {text}") from None
    if amount < 0 or amount > 10_000_000 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise FormError("bad_input", detail=f"{what}: {text}")
    return int(amount * 100)


def local_time(text: str, request: web.Request, site: str) -> float | None:
    """A ``datetime-local`` field (no zone) in the site's time zone."""
    if not text:
        return None
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise FormError("bad_input", detail=text) from None
    return naive.replace(tzinfo=tz_of(request.app[PAGES_VIEW], site)).timestamp()


def local_date(text: str) -> date | None:
    """A ``date`` field (YYYY-MM-DD); empty → None."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FormError("bad_input", detail=text) from None
