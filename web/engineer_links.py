"""Engineers' personal links: how a field engineer acts from the pages on a phone.

An engineer never holds the daemon's bearer token.  ``elvwatch link --engineer ID``
records a link for one engineer of the config's ``engineers:`` in the store and prints
a URL carrying ``E~ENGINEER~LINK~EXPIRY~SIGNATURE`` in ``?grant=``: an HMAC of the
engineer, the link's random id and the expiry under a key derived from the bearer token
with its own purpose (neither a read link nor a sign-off link can pass for it).  A link
is good while

* its signature holds (rotating ``http.token_file`` ends every link at once),
* it has not expired (7 days by default, 31 at most),
* its row in the store is not revoked (``elvwatch link --revoke LINK`` ends one link,
  ``--revoke-engineer ID`` all of an engineer's), and
* the engineer is still in the config (removing them ends their links).

What it opens, and the cookie that carries it, is web/engineer_access.py's business.
Every action taken through it is recorded as the engineer's: "王工 (wang)".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the store loads when a link is issued or checked, not for `--help`
    from elvwatch.tickets.field_schema import EngineerLinkRow
    from elvwatch.tickets.store import Store

DEFAULT_HOURS = 7 * 24.0   # a working week on the road
MAX_HOURS = 24.0 * 31
PREFIX = "E~"
_PURPOSE = b"elvwatch engineer link v1"
_SHAPE = re.compile(r"^E~(?P<engineer>[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})~(?P<link>[A-Za-z0-9_-]"
                    r"{8,32})~(?P<expires>\d{1,12})~(?P<sig>[A-Za-z0-9_-]{10,40})$")


@dataclass(frozen=True, slots=True)
class EngineerGrant:
    engineer: str
    link: str
    expires: int
    text: str


class LinkRefused(Exception):
    """A link that is not (or no longer) good; ``reason`` says which for the 401 page."""

    def __init__(self, reason: Literal["expired", "invalid", "revoked"]) -> None:
        super().__init__(f"engineer link {reason}")
        self.reason: Literal["expired", "invalid", "revoked"] = reason


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), _PURPOSE, hashlib.sha256).digest()


def _signature(token: str, engineer: str, link: str, expires: int) -> str:
    mac = hmac.new(_key(token), f"{engineer}\n{link}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode().rstrip("=")


def sign(token: str, engineer: str, link: str, expires: int) -> str:
    return f"{PREFIX}{engineer}~{link}~{expires}~{_signature(token, engineer, link, expires)}"


def is_engineer_grant(text: str | None) -> bool:
    return bool(text) and str(text).startswith(PREFIX)


def verify(token: str | None, text: str, now: float) -> EngineerGrant:
    """The grant ``text`` stands for, by its signature and expiry alone (the store says
    whether it was revoked: :func:`check_live`)."""
    match = _SHAPE.match(text)
    if not token or match is None:
        raise LinkRefused("invalid")
    engineer, link = match.group("engineer"), match.group("link")
    expires = int(match.group("expires"))
    if not hmac.compare_digest(match.group("sig").encode(),
                               _signature(token, engineer, link, expires).encode()):
        raise LinkRefused("invalid")
    if expires <= now:
        raise LinkRefused("expired")
    return EngineerGrant(engineer, link, expires, text)


def form_token(token: str, grant: EngineerGrant) -> str:
    """The value a page's forms carry for this grant: a cross-site page cannot know it,
    so it cannot post in the engineer's name even where a browser would send the cookie."""
    mac = hmac.new(_key(token), b"form\n" + grant.text.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode().rstrip("=")


def form_token_ok(token: str | None, grant: EngineerGrant, given: str | None) -> bool:
    return bool(token) and bool(given) and hmac.compare_digest(
        str(given).encode(), form_token(str(token), grant).encode())


# -- the store: issuing, revoking, checking ------------------------------------------------

@dataclass(frozen=True, slots=True)
class LinkRecord:
    link: str
    engineer: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    note: str


def _record(row: EngineerLinkRow) -> LinkRecord:
    return LinkRecord(row.id, row.engineer, row.created_at.timestamp(),
                      row.expires_at.timestamp(),
                      None if row.revoked_at is None else row.revoked_at.timestamp(), row.note)


async def issue(store: Store, token: str, engineer: str, hours: float, now: float,
                note: str = "") -> tuple[str, LinkRecord]:
    """A new link for ``engineer``: its grant text and its record."""
    from elvwatch.tickets.field_schema import EngineerLinkRow

    if not 1 / 60 <= hours <= MAX_HOURS:
        raise ValueError(f"an engineer link lives between a minute and {MAX_HOURS:.0f} hours, "
                         f"not {hours:g}")
    link = secrets.token_urlsafe(12)
    expires = int(now + hours * 3600)
    row = EngineerLinkRow(id=link, engineer=engineer, created_at=datetime.fromtimestamp(now, UTC),
                          expires_at=datetime.fromtimestamp(expires, UTC), revoked_at=None,
                          note=note.strip()[:500])
    async with store.transaction("issue an engineer link") as session:
        session.add(row)
    return sign(token, engineer, link, expires), _record(row)


async def revoke(store: Store, now: float, *, link: str | None = None,
                 engineer: str | None = None) -> list[LinkRecord]:
    """Revoke one link, or every live link of an engineer; returns those revoked."""
    from sqlalchemy import select

    from elvwatch.tickets.field_schema import EngineerLinkRow

    query = select(EngineerLinkRow).where(EngineerLinkRow.revoked_at.is_(None))
    if link is not None:
        query = query.where(EngineerLinkRow.id == link)
    if engineer is not None:
        query = query.where(EngineerLinkRow.engineer == engineer)
    stamp = datetime.fromtimestamp(now, UTC)
    async with store.transaction("revoke engineer links") as session:
        rows = list(await session.scalars(query))
        for row in rows:
            row.revoked_at = stamp
        return [_record(row) for row in rows]


async def links(store: Store) -> list[LinkRecord]:
    from sqlalchemy import select

    from elvwatch.tickets.field_schema import EngineerLinkRow

    async with store.transaction("list engineer links") as session:
        rows = await session.scalars(select(EngineerLinkRow).order_by(
            EngineerLinkRow.engineer, EngineerLinkRow.created_at))
        return [_record(row) for row in rows]


async def check_live(store: Store, grant: EngineerGrant) -> None:
    """LinkRefused("revoked") unless the store has the link, for that engineer, unrevoked."""
    from elvwatch.tickets.field_schema import EngineerLinkRow

    async with store.transaction("check an engineer link") as session:
        row = await session.get(EngineerLinkRow, grant.link)
        if row is None or row.engineer != grant.engineer or row.revoked_at is not None:
            raise LinkRefused("revoked")
