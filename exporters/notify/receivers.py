"""Notifiers built from the ``notify:`` config and the resolved credentials."""

from __future__ import annotations

from collections.abc import Mapping

from elvwatch.exporters.notify.base import Notifier, NotifyConfigError
from elvwatch.exporters.notify.bots import DingTalkNotifier, WeComNotifier
from elvwatch.exporters.notify.config import (
    DingTalkReceiver,
    EmailReceiver,
    NotifyConfig,
    WebhookReceiver,
    WeComReceiver,
)
from elvwatch.exporters.notify.smtp import EmailNotifier
from elvwatch.exporters.notify.webhook import WebhookNotifier
from elvwatch.probes.base import Credential


def build_notifiers(config: NotifyConfig,
                    credentials: Mapping[str, Credential]) -> dict[str, Notifier]:
    """One notifier per receiver; every problem at once in a NotifyConfigError."""
    notifiers, problems = _build_all(config, credentials)
    if problems:
        raise NotifyConfigError([p for found in problems.values() for p in found])
    return notifiers


def receiver_problems(config: NotifyConfig,
                      credentials: Mapping[str, Credential]) -> dict[str, list[str]]:
    """What keeps each receiver from working, by receiver name: what ``elvwatch check``
    reports, so a config it accepts does not fail when ``run`` builds the notifiers."""
    return _build_all(config, credentials)[1]


def _build_all(config: NotifyConfig, credentials: Mapping[str, Credential]
               ) -> tuple[dict[str, Notifier], dict[str, list[str]]]:
    problems: dict[str, list[str]] = {}
    notifiers: dict[str, Notifier] = {}
    for name, spec in config.receivers.items():
        credential = None
        if spec.credentials is not None:
            credential = credentials.get(spec.credentials)
            if credential is None:
                problems[name] = [f"notify.receivers.{name}: unknown credentials "
                                  f"{spec.credentials!r}"]
                continue
        try:
            notifiers[name] = _build(name, spec, credential)
        except NotifyConfigError as exc:
            problems[name] = list(exc.problems)
        except OSError as exc:  # the mail relay's ca_file (ssl.SSLError is one too)
            problems[name] = [f"notify.receivers.{name}: cannot load ca_file: "
                              f"{exc.strerror or exc}"]
    return notifiers, problems


def _build(name: str, spec: object, credential: Credential | None) -> Notifier:
    if isinstance(spec, WebhookReceiver):
        return WebhookNotifier(name, spec.options.url, credential=credential,
                               timeout=spec.options.timeout)
    if isinstance(spec, EmailReceiver):
        o = spec.options
        if credential is not None and (credential.username is None) != \
                (credential.password is None):
            raise NotifyConfigError([f"notify.receivers.{name}: SMTP login needs both a "
                                     "username and a password in its credentials"])
        return EmailNotifier(name, host=o.host, port=o.effective_port, sender=o.sender,
                             to=tuple(o.to), security=o.security, credential=credential,
                             timeout=o.timeout, ca_file=o.ca_file)
    if isinstance(spec, WeComReceiver):
        return WeComNotifier(name, spec.options.url, credential=credential,
                             timeout=spec.options.timeout)
    if isinstance(spec, DingTalkReceiver):
        return DingTalkNotifier(name, spec.options.url, credential=credential,
                                timeout=spec.options.timeout,
                                at_mobiles=tuple(spec.options.at_mobiles))
    raise TypeError(f"unknown receiver spec {type(spec).__name__}")  # a bug: config.py
