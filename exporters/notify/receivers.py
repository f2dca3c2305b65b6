"""Notifiers built from the ``notify:`` config and the resolved credentials."""

from __future__ import annotations

from collections.abc import Mapping

from exporters.notify.base import Notifier, NotifyConfigError
from exporters.notify.bots import DingTalkNotifier, WeComNotifier
from exporters.notify.config import (
    DingTalkReceiver,
    EmailReceiver,
    NotifyConfig,
    WebhookReceiver,
    WeComReceiver,
)
from exporters.notify.smtp import EmailNotifier
from exporters.notify.webhook import WebhookNotifier
from probes.base import Credential


def build_notifiers(config: NotifyConfig,
                    credentials: Mapping[str, Credential]) -> dict[str, Notifier]:
    """One notifier per receiver; every problem at once in a NotifyConfigError."""
    problems: list[str] = []
    notifiers: dict[str, Notifier] = {}
    for name, spec in config.receivers.items():
        credential = None
        if spec.credentials is not None:
            credential = credentials.get(spec.credentials)
            if credential is None:
                problems.append(f"notify.receivers.{name}: unknown credentials "
                                f"{spec.credentials!r}")
                continue
        try:
            notifiers[name] = _build(name, spec, credential)
        except NotifyConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise NotifyConfigError(problems)
    return notifiers


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
