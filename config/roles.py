"""The config models of the roles a daemon can take: one host doing everything
(``standalone``), a site ``poller`` inside a community's LAN that forwards what it
sees, and the ``centre`` that takes the pollers' observations and keeps the one store,
rule engine and ticket queue.  Checked against the rest of the config in
config/role_checks.py."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from elvwatch.config.fields import Identifier, SecretRef, Strict

Role = Literal["standalone", "poller", "centre"]


class BufferConfig(Strict):
    # The SQLite file observations wait in while the centre cannot be reached; relative
    # to the config file.
    path: Path = Path("elvwatch-poller-buffer.db")
    # Observations kept at most; when full, the oldest are dropped (logged and counted in
    # elvwatch_poller_buffer_dropped_total): the newest say what the devices are now.
    max_observations: int = Field(1_000_000, ge=100, le=100_000_000)


class PollerConfig(Strict):
    # This poller's id, as the centre's centre.pollers knows it.
    id: Identifier
    # The centre's address, https://HOST:PORT: the poller connects out to it, nothing
    # connects in to the poller.
    centre_url: str
    # The bearer token this poller presents to the centre (env or file, never inline).
    token: SecretRef
    # A PEM file of the certificate authority the centre's certificate is checked
    # against (relative to the config file); default: the system's authorities.
    ca_file: Path | None = None
    # The sites (sites[].id) this poller probes; every device must be at one of them.
    sites: list[Identifier] = Field(min_length=1)
    # Where observations wait for the centre, and how many at most.
    buffer: BufferConfig = BufferConfig()
    # Observations sent in one request.
    batch_max: int = Field(500, ge=1, le=10_000)

    @field_validator("centre_url")
    @classmethod
    def _https(cls, value: str) -> str:
        split = urlsplit(value)
        if split.scheme != "https" or not split.hostname:
            raise ValueError("must be an https:// URL, e.g. https://noc.example.com:9780 "
                             "(the poller's token travels over it)")
        if split.username is not None or split.password is not None:
            # The URL is logged and shown; a password in it would be too.
            raise ValueError("must not carry a user or password: the poller's token "
                             "(poller.token) is its credential")
        return value.rstrip("/")


class CentrePoller(Strict):
    # The bearer token the poller presents (env or file, never inline).
    token: SecretRef
    # The sites whose observations the poller may send.
    sites: list[Identifier] = Field(min_length=1)


class CentreConfig(Strict):
    # The pollers that may send observations, by id.
    pollers: dict[Identifier, CentrePoller] = Field(min_length=1)
    # A site none of whose pollers has been heard from for this many intervals of its
    # most frequent check is "not reporting": its devices show as unknown (not down)
    # and the rule site_not_reporting tickets its link.
    not_reporting_after: int = Field(3, ge=1, le=1000)
