"""Signed read links: how a field engineer opens the pages on a phone.

A phone browser cannot send the bearer token on a page navigation, so ``elvwatch link``
prints a URL carrying a read grant ``SCOPE.EXPIRY.SIGNATURE`` in ``?grant=``.  SCOPE is
one site id or ``*`` for every site; the signature is an HMAC of scope and expiry under
a key derived from the bearer token with its own purpose string (not the sign-off
links' key, so neither kind of link can pass for the other).  Nothing is stored: the
daemon and the CLI agree through ``http.token_file`` alone, so rotating the token
revokes every link at once.  What a grant opens, and the cookie that carries it after
the first request, is web/page_grants.py's business.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal

DEFAULT_HOURS = 72.0  # opened before driving out, good for the visit and the day after
MAX_HOURS = 24.0 * 31  # as the sign-off links: a forgotten link dies within a month
EVERY_SITE = "*"
_MAX_CHARS = 200  # a site id is at most 128 characters (config/schema.py Identifier)
_PURPOSE = b"elvwatch read link v1"


@dataclass(frozen=True)
class Grant:
    """A verified grant: read ``site``'s pages (None: every site's) until ``expires``."""

    site: str | None
    expires: int
    text: str


class GrantRefused(Exception):
    """A grant that is not (or no longer) good; ``reason`` says which for the 401 page,
    ``site`` is the site of a genuine but expired one-site grant (its page's language)."""

    def __init__(self, reason: Literal["expired", "invalid"], site: str | None = None) -> None:
        super().__init__(f"read link {reason}")
        self.reason: Literal["expired", "invalid"] = reason
        self.site = site


def _signature(token: str, scope: str, expires: int) -> str:
    key = hmac.new(token.encode(), _PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, f"{scope}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def sign(token: str, site: str | None, hours: float = DEFAULT_HOURS,
         now: float | None = None) -> str:
    """The ``grant`` query value for ``site`` (None: every site), valid for ``hours``."""
    if not 1 / 60 <= hours <= MAX_HOURS:
        raise ValueError(f"a read link lives between a minute and {MAX_HOURS:.0f} hours, "
                         f"not {hours:g}")
    scope = EVERY_SITE if site is None else site
    if not scope or "\n" in scope or len(scope) > 128:
        raise ValueError(f"site {scope!r} cannot be put in a read link")
    expires = int((time.time() if now is None else now) + hours * 3600)
    return f"{scope}.{expires}.{_signature(token, scope, expires)}"


def verify(token: str | None, text: str, now: float | None = None) -> Grant:
    """The grant ``text`` stands for, or GrantRefused: ``invalid`` if it was not signed
    with ``token`` (forged, altered, or the token was rotated since), ``expired`` if it
    was but its time is up."""
    if not token or len(text) > _MAX_CHARS:
        raise GrantRefused("invalid")
    parts = text.rsplit(".", 2)
    if len(parts) != 3:
        raise GrantRefused("invalid")
    scope, expires_text, given = parts
    if not scope or not expires_text.isdigit() or len(expires_text) > 12:
        raise GrantRefused("invalid")
    expires = int(expires_text)
    if not hmac.compare_digest(given.encode(), _signature(token, scope, expires).encode()):
        raise GrantRefused("invalid")
    if expires <= (time.time() if now is None else now):
        raise GrantRefused("expired", None if scope == EVERY_SITE else scope)
    return Grant(None if scope == EVERY_SITE else scope, expires, text)
