"""The ticket page's forms of what an engineer finds out on site: the severity after
diagnosis (an offline camera that is buried cabling is a major fault: its repair
deadline is then to agree) and the manufacturer's warranty claim (RMA) for a part.

Reached, like every field form, only through web/page_actions.py's ``ticket_action``
(the engineer's link, its site and the form's token checked first), and handed to the
ticket stage's one path — ``reclassify`` and ``record_rma`` of the ticket manager, as
the CLI and the API do — so each is an audit event, notified alike.
"""

from __future__ import annotations

from datetime import date

from aiohttp import web

from elvwatch.tickets.records import SEVERITIES, RmaClaim
from elvwatch.web.engineer_access import Engineer
from elvwatch.web.form_fields import FormError, local_date, text_field
from elvwatch.web.view import DaemonView

Result = web.StreamResponse | None


async def reclassify(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                     site: str) -> Result:
    form = await request.post()
    severity = text_field(form, "severity", required="severity")
    if severity not in SEVERITIES:
        raise FormError("bad_input", detail=severity)
    assert app.tickets is not None
    await app.tickets.reclassify(number, engineer.actor, severity,
                                 text_field(form, "reason", required="reclassify_reason"))
    return None


async def rma(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
              site: str) -> Result:
    """A new claim (claim number, part, vendor contact) or an update of one by its
    claim number: the dates it was sent and came back, a new contact."""
    form = await request.post()
    claim = RmaClaim(text_field(form, "claim_number", required="claim_number", limit=64),
                     part=text_field(form, "part", limit=400),
                     vendor_contact=text_field(form, "vendor_contact", limit=200),
                     vendor=text_field(form, "vendor", limit=200),
                     sent_on=local_date(text_field(form, "sent_on", limit=10)),
                     returned_on=local_date(text_field(form, "returned_on", limit=10)),
                     note=text_field(form, "note"))
    assert app.tickets is not None
    # Refused here in the site's words what the ticket stage would refuse in English.
    known = next((c for c in (await app.tickets.get(number)).rma_claims
                  if c["claim_number"] == claim.claim_number), None)
    if known is None and not claim.part:
        raise FormError("field_required", field="claimed_part")
    if known is None and not claim.vendor_contact:
        raise FormError("field_required", field="vendor_contact")
    stored = known or {}
    sent = claim.sent_on or _day(stored.get("sent_on"))
    returned = claim.returned_on or _day(stored.get("returned_on"))
    if sent and returned and returned < sent:
        raise FormError("rma_returned_before_sent", sent=sent.isoformat(),
                        returned=returned.isoformat())
    await app.tickets.record_rma(number, engineer.actor, claim)
    return None


def _day(value: object) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None
