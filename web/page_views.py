"""What each web page shows, gathered from the running App into plain values.

The templates only lay these out; every decision (what counts as a fault, in which
order devices are listed, how long is left until a deadline) is made here, where it
can be read and tested without a browser.
"""

from __future__ import annotations

import functools
import heapq
import importlib.util
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from elvwatch.config.resolved import Device
from elvwatch.exporters.reports.logs import cause_text
from elvwatch.exporters.reports.words import yuan
from elvwatch.rules.state import DeviceState, DeviceStatus
from elvwatch.tickets.glossary import state_term, term
from elvwatch.tickets.lifecycle import IN_HAND, WORKED, TicketState
from elvwatch.tickets.notes import display_title, event_note, local_work, person
from elvwatch.tickets.preventive import item_names
from elvwatch.tickets.records import SEVERITIES
from elvwatch.tickets.ticket_store import AuditEntry, Ticket, TicketDetail
from elvwatch.web.device_index import DeviceIndex
from elvwatch.web.live_tickets import LIMIT as LIVE_TICKET_LIMIT
from elvwatch.web.live_tickets import LiveTickets
from elvwatch.web.page_text import text
from elvwatch.web.view import DaemonView

# Faults first: the order devices and sites are listed in.
STATE_RANK = {DeviceState.DOWN: 0, DeviceState.DEGRADED: 1, DeviceState.UNKNOWN: 2,
              DeviceState.UP: 3}
HISTORY_DAYS = 90
HISTORY_ROWS = 50
ATTENTION_ROWS = 100  # devices needing attention the overview lists
# Values and errors come from devices: shown in full up to this, cut beyond.
VALUE_CHARS = 300


@dataclass(frozen=True, slots=True)
class DeviceLabel:
    name: str | None
    location: str | None


def _no_label(_device: str) -> DeviceLabel | None:
    return None


@dataclass(frozen=True)
class Fmt:
    """Words, times and spans in the page's language and the site's time zone; devices
    by name (``labels`` looks one up)."""

    lang: str
    tz: ZoneInfo
    now: float = field(default_factory=time.time)
    labels: Callable[[str], DeviceLabel | None] = _no_label
    items: Mapping[str, str] = field(default_factory=dict)   # checklist id → words

    def t(self, key: str, **values: object) -> str:
        return text(self.lang, key, **values)

    def term(self, group: str, key: str | None) -> str:
        return term(group, key, self.lang)

    def tstate(self, state: str, kind: str = "fault") -> str:
        return state_term(state, kind, self.lang)

    def device(self, device: str | None) -> str:
        """A device by its name (its id only when the archive gives it none)."""
        if not device:
            return ""
        label = self.labels(device)
        return label.name if label is not None and label.name else device

    def place(self, device: str | None) -> str:
        label = self.labels(device) if device else None
        return label.location or "" if label is not None else ""

    def title(self, ticket: Ticket) -> str:
        label = self.labels(ticket.device) if ticket.device else None
        name = label.name if label is not None else None
        return display_title(ticket.title_zh, ticket.title_en, ticket.device, name, self.lang)

    def person(self, actor: str) -> str:
        return person(actor, self.lang)

    def error(self, key: str, values: Mapping[str, object]) -> str:
        """A refused form's message; the field it names in words."""
        words = dict(values)
        if "field" in words:
            field_key = str(words["field"])
            words["field"] = self.items.get(field_key) or self.t(field_key)
        if "state" in words:
            words["state"] = self.tstate(str(words["state"]))
        try:
            return self.t(key, **words)
        except (KeyError, IndexError):
            return self.t(key)

    def cause(self, text: str) -> str:
        """A device state's cause (the checks' words) in the page's language."""
        return cause_text(text, self.lang)

    def work(self, text: str) -> str:
        return local_work(text, self.lang)

    def yuan(self, cents: int) -> str:
        return yuan(cents)

    def note(self, event: AuditEntry) -> str:
        return event_note(event.kind, event.actor, event.note, self.lang, self.tz.key,
                          lambda item: self.items.get(item) or item, self.device)

    def iso(self, seconds: float) -> str:
        return datetime.fromtimestamp(seconds, self.tz).isoformat(timespec="seconds")

    def when(self, seconds: float | None) -> str:
        if seconds is None:
            return "–"
        return datetime.fromtimestamp(seconds, self.tz).strftime("%Y-%m-%d %H:%M")

    def clock(self, seconds: float) -> str:
        return datetime.fromtimestamp(seconds, self.tz).strftime("%H:%M:%S")

    def span(self, seconds: float) -> str:
        minutes = int(abs(seconds) // 60)
        days, rest = divmod(minutes, 1440)
        hours, mins = divmod(rest, 60)
        parts = ([self.t("days", n=days)] if days else []) + (
            [self.t("hours", n=hours)] if hours else [])
        if not days:
            parts.append(self.t("minutes", n=mins))
        return " ".join(parts)

    def ago(self, seconds: float | None) -> str:
        if seconds is None:
            return ""
        if self.now - seconds < 60:
            return self.t("just_now")
        return self.t("ago", span=self.span(self.now - seconds))

    def deadline(self, due: float | None, done: float | None,
                 to_agree: bool = False) -> tuple[str, str]:
        """(text, css class) of a deadline: met, time left, overdue, or none."""
        if due is None:
            return (self.t("to_agree"), "agree") if to_agree else ("–", "none")
        if done is not None:
            return self.t("met", when=self.when(done)), "late" if done > due else "met"
        left = due - self.now
        if left < 0:
            return self.t("overdue", span=self.span(left)), "late"
        return self.t("left", span=self.span(left)), "soon" if left < 3600 else "left"

    def today(self) -> date:
        return datetime.fromtimestamp(self.now, self.tz).date()


def labels_of(app: DaemonView) -> Callable[[str], DeviceLabel | None]:
    """Names and locations of the configured devices, for :class:`Fmt`."""
    def look(device: str) -> DeviceLabel | None:
        dev = app.config.devices.get(device)
        if dev is None:
            return None
        cfg = dev.config
        return DeviceLabel(cfg.name, str(cfg.location) if cfg.location else None)
    return look


def tz_of(app: DaemonView, site: str | None) -> ZoneInfo:
    terms = app.terms.get(site or "") if site else None
    return ZoneInfo(terms.timezone if terms is not None else "Asia/Shanghai")


def short(value: object) -> str:
    out = str(value)
    return out if len(out) <= VALUE_CHARS else out[:VALUE_CHARS] + "…"


async def live_tickets(app: DaemonView, live: LiveTickets | None = None) -> list[Ticket]:
    if live is not None:
        return await live.get()
    if app.tickets is None:
        return []
    return await app.tickets.list_tickets(state="live", limit=LIVE_TICKET_LIMIT)


def by_urgency(tickets: list[Ticket]) -> list[Ticket]:
    """Open ones by their next deadline, the rest (resolved, verified) after them."""
    def key(t: Ticket) -> tuple[int, float]:
        if t.state in IN_HAND:
            due = t.response_due if t.acknowledged_at is None else t.resolve_due
            return 0, due if due is not None else float("inf")
        return 1, -t.opened_at
    return sorted(tickets, key=key)


def _status(app: DaemonView, device_id: str) -> DeviceStatus:
    return app.statuses.get(device_id) or DeviceStatus(device_id)


def device_row(app: DaemonView, device: Device, tickets: dict[str, list[str]]) -> dict[str, Any]:
    cfg, status = device.config, _status(app, device.id)
    parents = []
    for parent in cfg.depends_on:
        parents.append({"id": parent, "state": _status(app, parent).state.value})
    return {"id": cfg.id, "name": cfg.name, "kind": cfg.kind, "system": device.system.value,
            "site": cfg.site, "state": status.state.value, "since": status.since,
            "cause": short(status.cause), "location": str(cfg.location) if cfg.location else "",
            "depends_on": parents, "tickets": tickets.get(cfg.id, []),
            "vendor": cfg.vendor or status.info.get("vendor"), "model": cfg.model,
            "rank": STATE_RANK[status.state]}


def tickets_by_device(tickets: list[Ticket]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in tickets:
        for device in ({t.device} if t.device else set()) | set(t.affected):
            out.setdefault(device, []).append(t.number)
    return out


async def overview(app: DaemonView, index: DeviceIndex,
                   live: LiveTickets | None = None) -> dict[str, Any]:
    """The sites' counts and the devices needing attention come from the device index,
    kept as states change: walking every device once per site was 0.7 s of the
    checks' event loop at 20,000 devices and 50 sites."""
    tickets = await live_tickets(app, live)
    index.refresh()
    per_device = tickets_by_device(tickets)
    sites: list[dict[str, Any]] = []
    for site_id, site in app.config.sites.items():
        counts = index.counts(site_id)
        open_here = [t for t in tickets if t.site == site_id and t.state != TicketState.VERIFIED]
        sites.append({"id": site_id, "name": site.name, "counts": counts,
                      "total": sum(counts.values()), "open": len(open_here),
                      "breached": sum(t.response_breached or t.resolve_breached
                                      for t in open_here)})
    sites.sort(key=lambda s: (-s["counts"]["down"], -s["counts"]["degraded"], s["id"]))
    # Only the first 100 are shown: ordered by key, rows built for those alone.
    first = heapq.nsmallest(ATTENTION_ROWS, index.attention(), key=lambda d: (
        STATE_RANK[_status(app, d.id).state], d.config.site, d.id))
    attention = [device_row(app, d, per_device) for d in first]
    return {"sites": sites, "attention": attention,
            "tickets": by_urgency([t for t in tickets if t.state != TicketState.VERIFIED])[:30]}


async def site(app: DaemonView, site_id: str, index: DeviceIndex,
               live: LiveTickets | None = None) -> dict[str, Any] | None:
    cfg = app.config.sites.get(site_id)
    if cfg is None:
        return None
    tickets = [t for t in await live_tickets(app, live) if t.site == site_id]
    index.refresh()
    per_device = tickets_by_device(tickets)
    systems: dict[str, list[dict[str, Any]]] = {}
    for device_id in index.site_ids(site_id):
        device = app.config.devices.get(device_id)
        if device is not None:
            systems.setdefault(device.system.value, []).append(
                device_row(app, device, per_device))
    groups = []
    for system, rows in systems.items():
        rows.sort(key=lambda r: (r["rank"], r["location"], r["id"]))
        groups.append({"system": system, "devices": rows,
                       "faults": sum(r["rank"] < 2 for r in rows)})
    groups.sort(key=lambda g: (-g["faults"], g["system"]))
    return {"site": cfg, "systems": groups, "tickets": by_urgency(tickets),
            "total": sum(len(g["devices"]) for g in groups)}


@functools.cache
def _pdf_available() -> bool:
    return importlib.util.find_spec("weasyprint") is not None


def report_links(app: DaemonView, site_id: str, fmt: Fmt) -> list[dict[str, Any]]:
    """Links to the site's reports (web/reports.py) for this month so far and the
    contract period, in the page's language; PDF only where weasyprint is installed."""
    from elvwatch.exporters.reports.catalog import KINDS
    from elvwatch.web.reports import contract_period, report_url, this_month

    cfg = app.config.sites[site_id]
    spans = [("this_month", *this_month(datetime.fromtimestamp(fmt.now, fmt.tz).date()))]
    if cfg.contract is not None:
        spans.append(("contract_period", *contract_period(cfg.contract.start,
                                                          cfg.contract.months)))
    formats = ("html", "csv", "pdf") if _pdf_available() else ("html", "csv")
    return [{"label": fmt.t(key), "first": first, "last": last, "kinds": [
        {"kind": kind, "name": fmt.t(f"report_{kind}"),
         "links": [(f.upper(), report_url(site_id, kind, first, last, f, fmt.lang))
                   for f in formats]} for kind in KINDS]}
        for key, first, last in spans]


async def device(app: DaemonView, device_id: str, fmt: Fmt, index: DeviceIndex,
                 live: LiveTickets | None = None) -> dict[str, Any] | None:
    dev = app.config.devices.get(device_id)
    if dev is None:
        return None
    cfg, status = dev.config, _status(app, device_id)
    checks = []
    for check in dev.checks:
        state = status.checks.get(check.name)
        last = state.last if state else None
        checks.append({
            "name": check.name, "type": check.type, "interval": check.interval,
            "status": last.status.value if last else "unknown",
            "confirmed": state.confirmed.value if state else "unknown",
            "time": last.time if last else None,
            "latency": last.latency if last else None,
            "error": short(last.error) if last and last.error else "",
            "readings": [(short(k), short(v)) for k, v in sorted(last.values.items())][:60]
            if last else []})
    history: list[Any] = []
    if app.store is not None:
        start = datetime.fromtimestamp(fmt.now, UTC) - timedelta(days=HISTORY_DAYS)
        history = (await app.store.transitions(device_id, start=start))[-HISTORY_ROWS:][::-1]
    tickets: list[Ticket] = []
    if app.tickets is not None:
        own = await app.tickets.list_tickets(device=device_id, limit=50)
        numbers = {t.number for t in own}
        tickets = own + [t for t in await live_tickets(app, live)
                         if device_id in t.affected and t.number not in numbers]
    facts = [(key, getattr(cfg, key), short(status.info.get(key, "")))
             for key in ("vendor", "model", "firmware", "serial")]
    warranty = None
    if cfg.warranty_until is not None:
        days = (cfg.warranty_until - fmt.today()).days
        warranty = (fmt.t("warranty_until", date=cfg.warranty_until.isoformat(), days=days)
                    if days >= 0 else
                    fmt.t("warranty_expired", date=cfg.warranty_until.isoformat()))
    index.refresh()
    dependents = index.dependents(device_id)
    return {"row": device_row(app, dev, tickets_by_device(tickets)), "cfg": cfg,
            "site": app.config.sites.get(cfg.site), "facts": facts, "checks": checks,
            "history": history, "tickets": tickets, "warranty": warranty,
            "warranty_ok": warranty is not None and cfg.warranty_until is not None
            and cfg.warranty_until >= fmt.today(), "dependents": dependents}


def checklist_names(app: DaemonView, lang: str) -> dict[str, str]:
    """Checklist item id → its words in ``lang`` (ids are what the store keeps): the
    built-in items and the config's own."""
    from elvwatch.config.terms import checklist_words

    return item_names(lang, checklist_words(app.config))


def silences(app: DaemonView, include_expired: bool, now: float) -> list[dict[str, Any]]:
    out = []
    for s in app.silencer.list(include_expired=include_expired):
        state = "active" if s.active(now) else ("pending" if now < s.starts else "expired")
        out.append({"id": s.id, "matchers": sorted((k, sorted(v)) for k, v in s.matchers.items()),
                    "who": s.who, "why": s.why, "starts": s.starts or None, "until": s.until,
                    "state": state})
    return out


def handover_link(app: DaemonView, site_id: str, fmt: Fmt) -> str | None:
    """The handover package of the contract period (web/reports.py), if the site
    has a contract."""
    from elvwatch.web.reports import HANDOVER_PATH, contract_period

    contract = app.config.sites[site_id].contract
    if contract is None:
        return None
    first, last = contract_period(contract.start, contract.months)
    pdf = "1" if _pdf_available() else "0"
    return str(HANDOVER_PATH.format(site=site_id)
            + f"?from={first.isoformat()}&to={last.isoformat()}&pdf={pdf}&lang={fmt.lang}")


def site_devices(app: DaemonView, site_id: str, system: str | None) -> list[dict[str, str]]:
    """The site's devices (of ``system``, if given) for a form's choice, by location."""
    out = [{"id": d.id, "name": d.config.name or d.id,
            "location": str(d.config.location) if d.config.location else ""}
           for d in app.config.devices.values()
           if d.config.site == site_id and (system is None or d.system.value == system)]
    return sorted(out, key=lambda d: (d["location"], d["name"]))


def field_view(app: DaemonView, detail: TicketDetail, engineer: Any) -> dict[str, Any]:
    """What the field forms of a ticket page offer the engineer looking at it (nothing
    to anyone else): which actions the ticket's state allows, their visit in progress,
    the engineers who can be sent, the devices a checklist item can name."""
    t = detail.ticket
    out: dict[str, Any] = {"on": engineer is not None}
    if engineer is None:
        return out
    name = engineer.config.name
    visit = next((v for v in detail.visits if v["engineer"] == name
                  and v["departed_at"] is None), None)
    live = t.state in (TicketState.OPEN, TicketState.ACKNOWLEDGED, TicketState.RESOLVED)
    out.update({
        "name": name, "visit": visit,
        "engineers": [e for e in app.config.model.engineers
                      if not e.sites or t.site in e.sites],
        "devices": site_devices(app, t.site, t.system),
        "dispatch": t.state == TicketState.OPEN,
        "deadline": t.kind == "fault" and t.state in IN_HAND,
        # Diagnosis: the severity while the repair is in hand; warranty claims whenever
        # (a part comes back from the maker weeks after the ticket closed).
        "reclassify": t.kind == "fault" and t.state in IN_HAND,
        "severities": [s for s in SEVERITIES if s != t.severity],
        "rma": t.kind == "fault",
        "arrive": live and visit is None, "depart": visit is not None,
        "record": t.kind == "fault" and (
            t.state in IN_HAND or (t.state == TicketState.RESOLVED and t.awaiting_record)),
        "checklist": t.kind == "preventive" and t.state in IN_HAND,
        "photo": t.state != TicketState.CLOSED,
        # A ticket closed by the system for want of a sign-off still takes one.
        "sign": t.sign_off_refusal is None,
        "return_visit": t.state in WORKED,
        "part_rows": range(1, 5),
    })
    return out
