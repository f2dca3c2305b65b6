"""The logs a handover gives the client: every ticket's audit trail (工单处理记录) and
every device's state changes (设备状态变化记录) of a period, from the store.

A ticket's trail is included whole when any of its events is in the period (the
client reads a ticket from its opening to its close, not a slice of it).  The state
log lists each change of a device of the site in the period, its cause as the checks
saw it: :func:`cause_text` puts the usual words of a cause (a check's kind, ``down``,
``timeout``) in the site's language and leaves a device's own message as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from elvwatch.exporters.reports.labels import Label, site_labels
from elvwatch.exporters.reports.periods import Period
from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.schema import TicketEventRow, TicketRow
from elvwatch.tickets.store import DeviceRow, Store, TransitionRow


@dataclass(frozen=True, slots=True)
class Trail:
    number: str
    kind: str
    severity: str
    device: str | None
    title_zh: str
    title_en: str
    opened_at: float
    state: str
    events: tuple[ts.AuditEntry, ...]


@dataclass(frozen=True, slots=True)
class StateChange:
    at: float
    device: str
    previous: str
    state: str
    cause: str


@dataclass(frozen=True, slots=True)
class Logs:
    period: Period
    trails: tuple[Trail, ...]
    changes: tuple[StateChange, ...]
    labels: dict[str, Label] = field(default_factory=dict)


async def site_logs(store: Store, site: str, period: Period) -> Logs:
    start = datetime.fromtimestamp(period.start, UTC)
    end = datetime.fromtimestamp(period.end, UTC)
    async with store.transaction("read the audit trails") as session:
        touched = select(TicketEventRow.ticket_id).where(
            TicketEventRow.at >= start, TicketEventRow.at < end)
        rows = list(await session.scalars(
            select(TicketRow).where(TicketRow.site == site, TicketRow.id.in_(touched))
            .order_by(TicketRow.opened_at, TicketRow.id)))
        trails = []
        for row in rows:
            events = await session.scalars(select(TicketEventRow).where(
                TicketEventRow.ticket_id == row.id).order_by(TicketEventRow.seq))
            trails.append(Trail(
                row.number, row.kind, row.severity, row.device, row.title_zh, row.title_en,
                ts.epoch(row.opened_at) or 0.0, row.state,
                tuple(ts.AuditEntry(e.event_id, e.kind, ts.epoch(e.at) or 0.0, e.actor, e.note,
                                    e.from_state, e.to_state) for e in events)))
        changes = await session.execute(
            select(TransitionRow).join(DeviceRow, DeviceRow.id == TransitionRow.device_id)
            .where(DeviceRow.site == site, TransitionRow.at >= start, TransitionRow.at < end)
            .order_by(TransitionRow.at, TransitionRow.id))
        log = tuple(StateChange(ts.epoch(t.at) or 0.0, t.device_id, t.previous, t.state,
                                t.cause) for t in changes.scalars())
        labels = await site_labels(session, site)
    return Logs(period, tuple(trails), log, labels)


_CHECKS = {"icmp": ("网络连通", "ping"), "tcp": ("端口", "port"), "onvif": ("ONVIF", "ONVIF"),
           "rtsp": ("视频流", "video stream"), "snmp": ("SNMP", "SNMP"),
           "modbus": ("Modbus", "Modbus"), "sip": ("SIP 呼叫", "SIP"),
           "mqtt": ("MQTT", "MQTT"), "uplink": ("上联端口", "uplink port")}
_ERRORS = {"down": ("故障", "down"), "degraded": ("部分故障", "degraded"),
           "timeout": ("超时", "timeout"), "timed out": ("超时", "timed out"),
           "connection refused": ("连接被拒绝", "connection refused"),
           "unknown": ("未知", "unknown")}
_PART = re.compile(r"^(?P<check>[A-Za-z0-9_.:-]+): (?P<error>.*)$", re.S)
# The probes' usual messages (probes/tcp.py, probes/icmp.py), worded for the site; the
# number is kept, anything else a device said stays as it said it.
_MESSAGES = [(re.compile(p), zh, en) for p, zh, en in (
    (r"^connect to port (?P<n>\d+): connection refused$", "端口 {n} 拒绝连接",
     "port {n} refused the connection"),
    (r"^connect to port (?P<n>\d+): (?:timed out|timeout|TimeoutError)$", "端口 {n} 连接超时",
     "port {n} timed out"),
    (r"^connect to port (?P<n>\d+): (?:no route to host|network is unreachable)$",
     "端口 {n} 网络不可达", "port {n} unreachable"),
    (r"^port (?P<n>\d+) did not answer .*$", "端口 {n} 应答不符", "port {n} answered wrongly"),
    (r"^port (?P<n>\d+): connection closed early$", "端口 {n} 连接中断",
     "port {n} closed the connection"),
    (r"^no echo reply in (?P<n>\d+) tries$", "{n} 次探测均无回应", "no echo reply in {n} tries"),
    (r"^(?P<n>\d+) of (?P<m>\d+) lost$", "{m} 次探测丢失 {n} 次", "{n} of {m} lost"),
)]


def _message(error: str, index: int) -> str:
    for pattern, zh, en in _MESSAGES:
        match = pattern.match(error.strip())
        if match:
            return (zh, en)[index].format(**match.groupdict())
    return error


def cause_text(cause: str, language: str) -> str:
    """A state change's cause in ``language`` (see the module docstring)."""
    index = 0 if language == "zh-CN" else 1
    if cause == "all checks ok":
        return "各项检测正常" if index == 0 else cause
    out = []
    for part in cause.split("; "):
        match = _PART.match(part)
        if match is None:
            out.append(part)
            continue
        check, error = match.group("check"), match.group("error")
        kind, _, port = check.partition("_")
        name = _CHECKS.get(kind)
        label = (f"{name[index]} {port}".strip() if name else check)
        words = _ERRORS.get(error.strip().lower())
        out.append(f"{label}: {words[index] if words else _message(error, index)}")
    return ("；" if index == 0 else "; ").join(out)
