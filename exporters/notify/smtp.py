"""Email over SMTP: plain text + HTML alternative in the site's language.

aiosmtplib rather than smtplib in a thread: a send is cancelled with the dispatcher (a
thread would go on and deliver a message the log never hears of, a duplicate after the
restart), and timeouts are asyncio's.  Headers are encoded by the stdlib ``email``
package (RFC 2047 for a Chinese subject, UTF-8 bodies in base64).  ``Message-ID`` is
derived from the notification id, so a copy sent again after a crash threads with (and
is dropped by many clients as) the first.

SMTP's reply classes are the reverse of HTTP's: 4xx is transient (retry), 5xx permanent.
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from pathlib import Path

import aiosmtplib

from elvwatch.exporters.notify.base import Message, SendResult, scrub
from elvwatch.probes.base import Credential, bounded

Security = str  # "starttls" | "ssl" | "none"


class EmailNotifier:
    """Sends each message to a fixed list of addresses through one SMTP server."""

    def __init__(self, name: str, *, host: str, port: int, sender: str, to: tuple[str, ...],
                 security: Security = "starttls", credential: Credential | None = None,
                 timeout: float = 30.0, ca_file: Path | None = None) -> None:
        self.name = name
        self._host, self._port = host, port
        self._sender, self._to = sender, to
        # The envelope takes bare addresses; display names (张工 <…>) belong in headers.
        self._envelope_from = parseaddr(sender)[1] or sender
        self._envelope_to = [parseaddr(a)[1] or a for a in to]
        self._security = security
        self._timeout = timeout
        self._username = credential.username if credential else None
        self._password = credential.password.value \
            if credential is not None and credential.password is not None else None
        self._tls: ssl.SSLContext | None = None
        if security != "none":
            self._tls = ssl.create_default_context(
                cafile=str(ca_file) if ca_file is not None else None)

    def build(self, message: Message) -> EmailMessage:
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["Subject"] = message.subject
        mail["From"] = self._sender
        mail["To"] = ", ".join(self._to)
        mail["Date"] = formatdate(localtime=True)
        domain = self._envelope_from.rpartition("@")[2] or "elvwatch.invalid"
        mail["Message-ID"] = f"<{message.id or 'elvwatch'}@{domain}>"
        mail["X-Elvwatch-Delivery"] = message.id
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        mail.set_content(message.plain, subtype="plain", charset="utf-8")
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
        # After set_content: it drops every Content-* header already there.
        mail["Content-Language"] = message.language
        return mail

    async def send(self, message: Message) -> SendResult:
        login = self._username is not None and self._password is not None
        try:
            refused, _ = await aiosmtplib.send(
                self.build(message), sender=self._envelope_from, recipients=self._envelope_to,
                hostname=self._host, port=self._port, timeout=self._timeout,
                use_tls=self._security == "ssl", start_tls=self._security == "starttls",
                tls_context=self._tls, username=self._username if login else None,
                password=self._password if login else None)
        except aiosmtplib.SMTPAuthenticationError as exc:
            return SendResult.failure(f"login refused ({exc.code})", recoverable=False,
                                      status=exc.code)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return SendResult.failure(
                "every recipient refused: " + ", ".join(f"{r.recipient} {r.code}"
                                                        for r in exc.recipients),
                recoverable=any(400 <= c < 500 for c in codes))
        except aiosmtplib.SMTPResponseException as exc:
            return SendResult.failure(self._describe(exc), recoverable=400 <= exc.code < 500,
                                      status=exc.code)
        except aiosmtplib.SMTPNotSupported as exc:
            return SendResult.failure(self._describe(exc), recoverable=False)
        except ssl.SSLCertVerificationError as exc:
            return SendResult.failure(self._describe(exc), recoverable=False)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Includes SSL errors not wrapped above, timeouts and disconnects.
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLCertVerificationError):
                return SendResult.failure(self._describe(cause), recoverable=False)
            return SendResult.failure(self._describe(exc), recoverable=True)
        if refused:
            # Delivered to the others; sending again would give them a second copy.
            return SendResult(ok=True, error="refused: " + ", ".join(sorted(refused)))
        return SendResult.success()

    def _describe(self, exc: BaseException) -> str:
        secrets = (self._password,) if self._password else ()
        return bounded(f"{type(exc).__name__}: {scrub(str(exc), secrets)}")

    async def close(self) -> None:
        """Nothing held between sends: one connection per message keeps it simple and a
        burst is rate-limited to a few messages anyway."""
