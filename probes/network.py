"""Network errors in one set of words: what a probe reports when a connection fails.

Every probe that talks TCP or UDP itself (tcp, rtsp, sip, modbus, the ONVIF client)
words a socket error here, so "connection refused" reads the same from each, and each
error comes with its typed :class:`~elvwatch.probes.base.Reason`.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import NamedTuple

from elvwatch.probes.base import Reason, bounded

# What the peer did when it ended the exchange itself.
_CLOSED = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


# Reasons that mean the device could not be talked to at all.
CONNECTION = frozenset({Reason.REFUSED, Reason.TIMEOUT, Reason.UNREACHABLE, Reason.CLOSED})
# The first word of an error text, for the reasons that have their own.
_WORDS = {Reason.AUTH: "authentication", Reason.NO_STREAM: "no stream",
          **dict.fromkeys(CONNECTION, "unreachable")}


def reason_of(word: str) -> Reason:
    """The reason an error text starting with ``word`` stands for."""
    for reason, known in _WORDS.items():
        if known == word:
            return Reason.UNREACHABLE if reason in CONNECTION else reason
    return Reason.PROTOCOL


class Failure(NamedTuple):
    reason: Reason
    text: str


def network_failure(exc: BaseException) -> Failure:
    """``exc``, raised while connecting or talking to a device, in the probes' words."""
    if isinstance(exc, ConnectionRefusedError):
        return Failure(Reason.REFUSED, "connection refused")
    if isinstance(exc, asyncio.IncompleteReadError):
        return Failure(Reason.CLOSED, "connection closed early")
    if isinstance(exc, OSError) and exc.strerror:
        if isinstance(exc, TimeoutError):
            reason = Reason.TIMEOUT
        elif not isinstance(exc, socket.gaierror) and exc.errno in _CLOSED:
            reason = Reason.CLOSED
        else:
            reason = Reason.UNREACHABLE
        return Failure(reason, exc.strerror.lower())
    if isinstance(exc, TimeoutError):
        return Failure(Reason.TIMEOUT, "timed out")
    text = bounded(str(exc), 120)
    return Failure(Reason.PROTOCOL if not isinstance(exc, OSError) else Reason.UNREACHABLE,
                   f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
