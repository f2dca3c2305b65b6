"""The ``notify:`` section of the config: receivers by name, routes, retries.

Strict like the rest of the config (unknown keys fail).  Secrets never appear here:
a receiver names an entry of ``credentials:`` and the notifier reads its webhook key,
bot secret, SMTP password or HMAC secret from that Credential.

    notify:
      timezone: Asia/Shanghai
      receivers:
        ops-wecom: {type: wecom, credentials: wecom-ops}
        noc-mail:
          type: email
          credentials: smtp
          options: {host: smtp.example.com, sender: elvwatch@example.com, to: [noc@example.com]}
      routes:
        - events: [opened, escalated, breached]
          severities: [major, emergency]
          receivers: [ops-wecom, noc-mail]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from elvwatch.tickets.events import TicketEvent, TicketEventKind

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
Language = Literal["zh-CN", "en"]
Severity = Literal["general", "major", "emergency"]

# Query parameters that carry a bot's key: they belong in credentials, not in the config.
_SECRET_PARAMS = {"key", "access_token", "sign", "timestamp", "secret", "token"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    leaked = sorted({k for k, _ in parse_qsl(parts.query)} & _SECRET_PARAMS)
    if leaked or parts.password:
        raise ValueError(f"the URL carries a secret ({', '.join(leaked) or 'password'}): "
                         "put it in the receiver's credentials instead")
    return value


class RateLimit(Strict):
    """Token bucket per receiver: ``burst`` messages at once, then ``per_minute``."""

    # Messages a minute, on average, once the burst is spent.
    per_minute: float = Field(20.0, gt=0, le=6000)
    # Messages that may go at once.
    burst: int = Field(5, ge=1, le=1000)


class WebhookOptions(Strict):
    # Where the JSON is posted (http or https; no secret in the URL: the HMAC key is in
    # credentials).
    url: str
    # Seconds one delivery may take.
    timeout: float = Field(10.0, gt=0, le=300)

    _url = field_validator("url")(_http_url)


class EmailOptions(Strict):
    # The SMTP server.
    host: str = Field(min_length=1, max_length=253)
    # None: 465 for ssl, 587 for starttls, 25 for none.
    port: int | None = Field(None, ge=1, le=65535)
    # starttls (port 587), ssl: implicit TLS (465), or none (25).
    security: Literal["starttls", "ssl", "none"] = "starttls"
    # The From address: user@host or Name <user@host>.
    sender: str = Field(min_length=3, max_length=254)
    # Where the messages go (escalations go to the site's contacts instead).
    to: list[str] = Field(min_length=1, max_length=100)
    # Seconds one delivery may take.
    timeout: float = Field(30.0, gt=0, le=600)
    # Trust this CA bundle instead of the system's (a private mail relay).
    ca_file: Path | None = None

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if "@" not in address or not address.isascii() or any(c in value for c in "\r\n"):
            raise ValueError(f"{value!r} is not an email address (name <user@host> or "
                             "user@host, the address part in ASCII)")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            cls._address(address)
        return value

    @property
    def effective_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.security]


class WeComOptions(Strict):
    # The WeCom group bot endpoint; the bot's key comes from credentials (secrets.key).
    url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    # Seconds one delivery may take.
    timeout: float = Field(10.0, gt=0, le=300)

    _url = field_validator("url")(_http_url)


class DingTalkOptions(Strict):
    # The DingTalk group bot endpoint; access_token (and secret, for signed mode) come from
    # credentials.
    url: str = "https://oapi.dingtalk.com/robot/send"
    # Seconds one delivery may take.
    timeout: float = Field(10.0, gt=0, le=300)
    # Mobile numbers @-mentioned on emergency notifications.
    at_mobiles: list[Annotated[str, Field(pattern=r"^\+?[0-9-]{5,20}$")]] = \
        Field(default_factory=list)

    _url = field_validator("url")(_http_url)


class _Receiver(Strict):
    # The credentials (credentials.<name>) holding the bot key, HMAC key or SMTP login.
    credentials: Identifier | None = None
    # None: the language of each event's site.
    language: Language | None = None


class WebhookReceiver(_Receiver):
    # A JSON POST signed with HMAC-SHA256.
    type: Literal["webhook"]
    # Where and how long.
    options: WebhookOptions
    # How many messages it may send; a storm beyond it goes out as one summary.
    rate: RateLimit = RateLimit(per_minute=120, burst=20)


class EmailReceiver(_Receiver):
    # Mail through an SMTP server.
    type: Literal["email"]
    # The server, sender and recipients.
    options: EmailOptions
    # How many messages it may send; a storm beyond it goes out as one summary.
    rate: RateLimit = RateLimit(per_minute=30, burst=10)


class WeComReceiver(_Receiver):
    # A WeCom (企业微信) group bot.
    type: Literal["wecom"]
    # Endpoint and timeout (the defaults fit).
    options: WeComOptions = WeComOptions()
    # WeCom allows 20 messages a minute per bot.
    rate: RateLimit = RateLimit(per_minute=20, burst=5)


class DingTalkReceiver(_Receiver):
    # A DingTalk (钉钉) group bot.
    type: Literal["dingtalk"]
    # Endpoint, timeout and the mobiles to @-mention.
    options: DingTalkOptions = DingTalkOptions()
    # DingTalk allows 20 messages a minute per bot, then throttles it for 10 minutes.
    rate: RateLimit = RateLimit(per_minute=20, burst=5)


Receiver = Annotated[WebhookReceiver | EmailReceiver | WeComReceiver | DingTalkReceiver,
                     Field(discriminator="type")]


class Route(Strict):
    """Events matching every given list go to ``receivers``; an empty list matches all."""

    # Who gets the matching events (notify.receivers names).
    receivers: list[Identifier] = Field(min_length=1)
    # Which ticket events.
    events: list[TicketEventKind] = Field(default_factory=lambda: [
        TicketEventKind.OPENED, TicketEventKind.ESCALATED, TicketEventKind.BREACHED,
        TicketEventKind.RESOLVED, TicketEventKind.VERIFIED, TicketEventKind.SIGNED_OFF,
        TicketEventKind.RECLASSIFIED, TicketEventKind.PREVENTIVE_DUE])
    # Only events of these sites.
    sites: list[Identifier] = Field(default_factory=list)
    # Only tickets of these severities.
    severities: list[Severity] = Field(default_factory=list)
    # Only tickets of these systems (cctv, access_control, …).
    systems: list[str] = Field(default_factory=list)

    def matches(self, event: TicketEvent) -> bool:
        return (event.kind in self.events
                and (not self.sites or event.site in self.sites)
                and (not self.severities or event.severity in self.severities)
                and (not self.systems or (event.system or "") in self.systems))


class RetryPolicy(Strict):
    """Exponential backoff for recoverable failures: initial, ×2 each time, capped."""

    # Seconds before the first retry.
    initial_delay: float = Field(2.0, gt=0, le=3600)
    # The longest wait between retries, in seconds.
    max_delay: float = Field(300.0, gt=0, le=86400)
    # Tries in all before a notification is given up on (and counted as failed).
    attempts: int = Field(8, ge=1, le=1000)

    def delay(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1 = the first retry)."""
        return float(min(self.max_delay, self.initial_delay * 2 ** (attempt - 1)))


class NotifyConfig(Strict):
    # Where notifications can go, by name.
    receivers: dict[Identifier, Receiver] = Field(default_factory=dict)
    # Which events go to which receivers; every matching route's receivers, each once.
    routes: list[Route] = Field(default_factory=list)
    # How failures worth retrying are retried.
    retry: RetryPolicy = RetryPolicy()
    # Deadlines and times in messages are shown in this zone.
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from elvwatch.exporters.notify.messages import zone  # the messages load on use

        zone(value)
        return value

    @model_validator(mode="after")
    def _known_receivers(self) -> NotifyConfig:
        for index, route in enumerate(self.routes):
            unknown = [r for r in route.receivers if r not in self.receivers]
            if unknown:
                raise ValueError(f"routes[{index}]: unknown receivers {', '.join(unknown)}")
        return self

    def receivers_for(self, event: TicketEvent) -> list[str]:
        """Every receiver of every matching route, each once, in config order."""
        names: dict[str, None] = {}
        for route in self.routes:
            if route.matches(event):
                names.update(dict.fromkeys(route.receivers))
        return list(names)


@dataclass(frozen=True, slots=True)
class EscalationContact:
    name: str
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class SiteEscalation:
    """A site's escalation route: the receivers that reach its escalation contacts."""

    receivers: tuple[str, ...]
    contacts: tuple[EscalationContact, ...] = ()


_MOBILE = re.compile(r"^\+?[0-9-]{5,20}$")


def with_escalation(config: NotifyConfig, sites: Mapping[str, SiteEscalation]) -> NotifyConfig:
    """``config`` plus, per site and escalation receiver, a receiver ``NAME:SITE`` that
    reaches the site's escalation contacts and a route of the site's ``escalated``
    events to it: an email receiver writes to their addresses (its own ``to`` when
    none has one), a DingTalk bot also @-mentions their mobiles; a webhook or WeCom bot
    is the site's route as it is.  Each such receiver has its own rate limit and
    notification log entries."""
    receivers = dict(config.receivers)
    routes = list(config.routes)
    for site, route in sorted(sites.items()):
        names: list[str] = []
        for via in route.receivers:
            base = config.receivers.get(via)
            if base is None:
                raise ValueError(f"site {site}: unknown escalation receiver {via!r}")
            name = f"{via}:{site}"[:128]
            receivers[name] = _reaching(base, route.contacts)
            names.append(name)
        if names:
            routes.append(Route(receivers=names, events=[TicketEventKind.ESCALATED],
                                sites=[site]))
    return config.model_copy(update={"receivers": receivers, "routes": routes})


def _reaching(base: Receiver, contacts: tuple[EscalationContact, ...]) -> Receiver:
    if isinstance(base, EmailReceiver):
        emails = [c.email for c in contacts if c.email]
        if not emails:
            return base
        return base.model_copy(update={"options": base.options.model_copy(
            update={"to": emails})})
    if isinstance(base, DingTalkReceiver):
        mobiles = [m for m in (re.sub(r"[\s()]", "", c.phone or "") for c in contacts)
                   if _MOBILE.match(m)]
        merged = list(dict.fromkeys([*base.options.at_mobiles, *mobiles]))
        return base.model_copy(update={"options": base.options.model_copy(
            update={"at_mobiles": merged})})
    return base
