"""Reports as JSON documents for scripts: ``elvwatch report … --json`` and the HTTP API.

One shape per report, stable (fields are added, never renamed or removed).  Every
document has ``report`` (its kind), ``site`` (id, name, language, timezone),
``period`` (label, start, end — end exclusive), ``generated_at``, then its own fields.
Times are ISO 8601 with the site's offset, like the CSV; durations are seconds as
numbers (exact to the microsecond, as stored); missing values are ``null``.  Free text
(titles, notes) comes in both languages where the store keeps both, never translated
by the document.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from elvwatch.exporters.reports.availability import AvailabilityReport
from elvwatch.exporters.reports.periods import Period
from elvwatch.exporters.reports.render import SiteInfo, breach_reason
from elvwatch.exporters.reports.service import Record, ServiceReport
from elvwatch.exporters.reports.sla import SlaReport

Document = dict[str, Any]


def _iso(seconds: float | None, site: SiteInfo) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, ZoneInfo(site.timezone)).isoformat()


def _period(period: Period, site: SiteInfo) -> Document:
    return {"label": period.label, "start": _iso(period.start, site),
            "end": _iso(period.end, site)}


def _head(kind: str, site: SiteInfo, period: Period | None, generated_at: float) -> Document:
    return {"report": kind,
            "site": {"id": site.site, "name": site.name, "language": site.language,
                     "timezone": site.timezone},
            "period": None if period is None else _period(period, site),
            "generated_at": _iso(generated_at, site)}


def availability_document(report: AvailabilityReport, site: SiteInfo,
                          generated_at: float) -> Document:
    """设备运行情况记录: ``months`` (the range split at local month starts, first and
    last clipped), each with one entry per device in the archive during it."""
    whole = None
    if report.periods:
        zone = ZoneInfo(site.timezone)
        start, end = report.periods[0].start, report.periods[-1].end
        first = datetime.fromtimestamp(start, zone).date()
        last = (datetime.fromtimestamp(end, zone) - timedelta(days=1)).date()
        whole = Period(f"{first.isoformat()}..{last.isoformat()}", start, end)
    return _head("availability", site, whole, generated_at) | {"months": [
        _period(p, site) | {"devices": [{
            "device": r.device, "name": r.name, "system": r.system, "location": r.location,
            "availability_percent": r.availability,
            "up_seconds": r.up_s, "degraded_seconds": r.degraded_s,
            "down_seconds": r.down_s, "unknown_seconds": r.unknown_s,
            "not_in_service_seconds": r.not_in_service_s,
            "down_at_start": r.down_at_start, "faults": r.down_episodes,
            "fault_tickets": r.fault_tickets, "tickets": list(r.tickets),
        } for r in report.for_period(p)]}
        for p in report.periods]}


def sla_document(report: SlaReport, site: SiteInfo, generated_at: float) -> Document:
    """Fault tickets opened in the period: per severity, per ticket, and the breaches."""
    return _head("sla", site, report.period, generated_at) | {
        "as_of": _iso(report.as_of, site),
        "by_severity": [{
            "severity": s.severity, "tickets": s.tickets, "responded": s.responded,
            "resolved": s.resolved,
            "response_median_seconds": s.response_median_s,
            "response_worst_seconds": s.response_worst_s,
            "repair_median_seconds": s.repair_median_s,
            "repair_worst_seconds": s.repair_worst_s,
            "response_breaches": s.response_breaches, "repair_breaches": s.resolve_breaches,
        } for s in report.by_severity],
        "tickets": [{
            "ticket": t.number, "severity": t.severity,
            "original_severity": t.original_severity, "channel": t.channel,
            "state": t.state, "device": t.device,
            "location": t.location, "title_zh": t.title_zh, "title_en": t.title_en,
            "opened_at": _iso(t.opened_at, site),
            "response_due": _iso(t.response_due, site),
            "repair_due": _iso(t.resolve_due, site), "repair_to_agree": t.resolve_to_agree,
            "response_seconds": t.response_s, "repair_seconds": t.repair_s,
        } for t in report.tickets],
        "breaches": [{
            "ticket": b.number, "severity": b.severity,
            "deadline": "response" if b.which == "response" else "repair",
            "due": _iso(b.due, site), "met_at": _iso(b.met_at, site),
            "late_seconds": b.late_s, "escalated_at": _iso(b.recorded_at, site),
            "replaced_at": _iso(b.replaced_at, site), "replaced_why": b.replaced_why,
            "reason": breach_reason(b, site),
        } for b in report.breaches],
        "preventive": {"due": report.preventive_due,
                       "done_in_time": report.preventive_done_in_time,
                       "done_late": report.preventive("done_late"),
                       "late": report.preventive("late"),
                       "not_yet_due": report.preventive("not_yet_due"),
                       "orders": [{"ticket": w.number, "system": w.system, "period": w.period,
                                   "due": _iso(w.due, site),
                                   "completed_at": _iso(w.completed_at, site),
                                   "status": w.status, "follow_ups": list(w.follow_ups)}
                                  for w in report.work_orders]},
    }


def _record(r: Record, site: SiteInfo) -> Document:
    return {"at": _iso(r.at, site), "engineer": r.engineer, "cause": r.cause,
            "work_done": r.work_done,
            "parts": [{"device": p.device, "part": p.part, "quantity": p.quantity,
                       "coverage": p.coverage, "consumable": p.consumable,
                       "unit_price_cents": p.unit_price_cents,
                       "charge_cents": p.charge_cents} for p in r.parts]}


def service_document(report: ServiceReport, site: SiteInfo, generated_at: float) -> Document:
    """服务记录 (``entries[].visits``: the service records, a name kept from before the
    receipts were per visit), 服务回执单 (``entries[].sheets``: one per visit) and
    用户回访反馈信息表 (``feedback``; ``ticket`` null: a periodic visit of the site)."""
    return _head("service", site, report.period, generated_at) | {
        "entries": [{
            "ticket": e.number, "kind": e.kind, "state": e.state, "severity": e.severity,
            "device": e.device, "location": e.location, "title_zh": e.title_zh,
            "title_en": e.title_en, "opened_at": _iso(e.opened_at, site),
            "resolved_at": _iso(e.resolved_at, site),
            "visits": [_record(r, site) for r in e.records],
            "sheets": [{"engineer": s.engineer, "arrived_at": _iso(s.arrived_at, site),
                        "departed_at": _iso(s.departed_at, site),
                        "records": [_record(r, site) for r in s.records],
                        "checklist": [{"item": item, "ok": ok, "note": note}
                                      for item, ok, note in s.checklist],
                        "receipts": [{"signed_by": r.name, "at": _iso(r.at, site),
                                      "comment": r.comment, "after_close": r.late}
                                     for r in s.receipts],
                        "photos": s.photos, "charge_cents": s.charge_cents}
                       for s in e.sheets],
            "receipts": [{"signed_by": r.name, "at": _iso(r.at, site), "comment": r.comment,
                          "after_close": r.late} for r in e.receipts],
            "checklist": [{"item": item, "ok": ok, "note": note}
                          for item, ok, note in e.checklist],
        } for e in report.entries],
        "feedback": [{
            "ticket": f.number, "device": f.device, "title_zh": f.title_zh,
            "title_en": f.title_en, "at": _iso(f.at, site), "rating": f.rating,
            "comment": f.comment, "recorded_by": f.recorded_by, "contact": f.contact,
            "quality_issue": f.quality_issue, "solution": f.solution, "outcome": f.outcome,
            "outcome_at": _iso(f.outcome_at, site),
        } for f in report.feedback],
    }
