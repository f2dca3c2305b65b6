"""Signed sign-off links: how a site representative signs a ticket off on a phone.

The representative is not on loopback and must never hold the daemon's bearer token, so
an engineer runs ``elvwatch tickets signoff-link NUMBER`` and hands over (WeChat, SMS,
QR code) a URL ``/tickets/NUMBER?link=EXPIRY.SIGNATURE``.  The signature is an HMAC of
the ticket number and the expiry under a key derived from the bearer token, so the link

* opens that one ticket's page and its sign-off form, nothing else;
* stops working at its expiry (72 h by default) or when the bearer token is rotated;
* is spent once the sign-off is made: verification is accepted only from ``resolved``,
  so a second POST is refused by the ticket lifecycle (409), not by a server-side list.

No state is stored for links: the daemon and the CLI agree through the token file alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

DEFAULT_HOURS = 72.0
MAX_HOURS = 24.0 * 31
# A separate key per purpose, so a link signature can never be replayed as a bearer token.
_PURPOSE = b"elvwatch sign-off link v1"


def read_token(path: Path | None) -> str | None:
    """The bearer token of ``http.token_file``, or None if unset, unreadable or empty."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def _signature(token: str, number: str, expires: int) -> str:
    key = hmac.new(token.encode(), _PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, f"{number}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def sign(token: str, number: str, hours: float = DEFAULT_HOURS,
         now: float | None = None) -> str:
    """The ``link`` query value for ``number``, valid for ``hours``."""
    if not 0 < hours <= MAX_HOURS:
        raise ValueError(f"a sign-off link lives between a minute and {MAX_HOURS:.0f} hours")
    expires = int((time.time() if now is None else now) + hours * 3600)
    return f"{expires}.{_signature(token, number, expires)}"


def valid(token: str | None, number: str, link: str | None, now: float | None = None) -> bool:
    """True if ``link`` was signed for ``number`` with ``token`` and has not expired."""
    if not token or not link:
        return False
    expires_text, _, given = link.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(given.encode(), _signature(token, number, expires).encode())


def expires_at(link: str) -> float | None:
    head = link.partition(".")[0]
    return float(head) if head.isdigit() else None
