"""Ticket events rendered for people: subject, plain text, HTML and chat markdown, in the
site's language (zh-CN or en).

Every text that can come from a device or a person (titles, device names, locations,
notes) is untrusted: bounded and stripped of control characters everywhere, escaped in
HTML, and escaped in markdown so it cannot add headings, links, mentions or colour tags
to a group chat message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from elvwatch.exporters.notify.base import Message
from elvwatch.probes.base import bounded
from elvwatch.tickets.events import TicketEvent, TicketEventKind
from elvwatch.tickets.glossary import state_term, term
from elvwatch.tickets.notes import display_title, local_note, person

LANGUAGES = ("zh-CN", "en")
# A chat message listing more lines than this is cut: the rest is one "and N more" line.
SUMMARY_LINES = 30

# The system's confirmation of a recovery and the client's acceptance are never worded
# alike: 系统确认恢复 (verified) is the probes', 用户已验收 (signed_off) the site's.
_KIND = {
    TicketEventKind.OPENED: ("新工单", "Ticket opened"),
    TicketEventKind.ACKNOWLEDGED: ("工单已受理", "Ticket acknowledged"),
    TicketEventKind.ESCALATED: ("工单升级", "Ticket escalated"),
    TicketEventKind.BREACHED: ("工单超时", "SLA breached"),
    TicketEventKind.RESOLVED: ("工单已修复", "Ticket resolved"),
    TicketEventKind.VERIFIED: ("系统确认恢复", "Recovery confirmed by monitoring"),
    TicketEventKind.SIGNED_OFF: ("用户已验收", "Accepted by the client"),
    TicketEventKind.CLOSED: ("工单已关闭", "Ticket closed"),
    TicketEventKind.REOPENED: ("工单重新打开", "Ticket reopened"),
    TicketEventKind.PREVENTIVE_DUE: ("定期保养到期", "Preventive maintenance due"),
    TicketEventKind.DEADLINE_SET: ("修复期限已商定", "Repair deadline agreed"),
    TicketEventKind.FEEDBACK: ("用户回访", "Return-visit feedback"),
    TicketEventKind.RECLASSIFIED: ("工单级别调整", "Severity reclassified"),
    TicketEventKind.RMA: ("厂商保修索赔", "Warranty claim (RMA)"),
    TicketEventKind.DEVICE_REPLACED: ("设备已更换", "Device replaced"),
}
_LABELS = {
    "ticket": ("工单", "Ticket"), "site": ("小区", "Site"), "severity": ("级别", "Severity"),
    "state": ("状态", "State"), "device": ("设备", "Device"), "system": ("系统", "System"),
    "location": ("位置", "Location"), "affected": ("受影响设备", "Affected devices"),
    "response_due": ("响应时限", "Response due"), "resolve_due": ("修复时限", "Repair due"),
    "actor": ("操作人", "By"), "note": ("备注", "Note"), "at": ("时间", "Time"),
    "link": ("查看工单", "Open ticket"),
}
_COLOR = {"emergency": "warning", "major": "warning", "general": "info"}

# Characters that start markdown syntax in WeCom/DingTalk messages.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~@])")


def zone(name: str) -> tzinfo:
    """The named time zone; a missing tz database is a deployment error said plainly."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (is tzdata installed?)") from exc


def language_of(event: TicketEvent, override: str | None = None) -> str:
    language = override or event.language
    return language if language in LANGUAGES else "zh-CN"


def md_escape(text: str) -> str:
    """Untrusted text made inert in chat markdown: one line, no tags, no syntax."""
    one_line = " ".join(bounded(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def _t(pair: tuple[str, str], language: str) -> str:
    return pair[0] if language == "zh-CN" else pair[1]


def _kind(event: TicketEvent, language: str) -> str:
    pair = _KIND.get(event.kind)
    return _t(pair, language) if pair else term("event", event.kind.value, language)


def _severity(event: TicketEvent, language: str) -> str:
    word = term("severity", event.severity, language)
    return word.upper() if event.severity == "emergency" and language != "zh-CN" else word


def _title(event: TicketEvent, language: str) -> str:
    title = display_title(event.title_zh, event.title_en, event.device, event.device_name,
                          language)
    return bounded(title or event.title_en or event.title_zh)


def _when(moment: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(moment, tz).strftime("%Y-%m-%d %H:%M %Z").strip()


def _headline(event: TicketEvent, language: str) -> str:
    severity = _severity(event, language)
    tag = f"【{severity}】" if language == "zh-CN" else f"[{severity}]"
    return f"{tag}{_kind(event, language)} {bounded(event.ticket, 64)}"


def _fields(event: TicketEvent, language: str, tz: tzinfo) -> list[tuple[str, str]]:
    """(label, untrusted value) rows; empty values are left out."""
    system = term("system", event.system, language)
    timezone = getattr(tz, "key", None) or "UTC"
    affected = ""
    if event.affected:
        shown = ", ".join(bounded(a, 64) for a in event.affected[:10])
        more = len(event.affected) - 10
        affected = f"{len(event.affected)}: {shown}" + (f" (+{more})" if more > 0 else "")
    rows = [
        ("ticket", event.ticket), ("site", event.site_name or event.site),
        ("severity", _severity(event, language)),
        # A sign-off is the client's word; the state it leaves (the system's confirmed
        # recovery, closed next) is not repeated in the same message.
        ("state", state_term(event.state, event.ticket_kind, language)
         if event.state and event.kind is not TicketEventKind.SIGNED_OFF else ""),
        ("device", event.device_name or event.device or ""), ("system", system),
        ("location", event.location or ""), ("affected", affected),
        ("response_due", _when(event.response_due, tz) if event.response_due else ""),
        ("resolve_due", _when(event.resolve_due, tz) if event.resolve_due else ""),
        ("actor", person(event.actor, language) if event.actor != "system" else ""),
        ("note", local_note(event.note, language, timezone)),
        ("at", _when(event.at, tz)),
    ]
    return [(_t(_LABELS[key], language), bounded(value)) for key, value in rows if value]


def _link(event: TicketEvent) -> str | None:
    url = event.url
    if url and url.startswith(("http://", "https://")) and len(url) < 2048 \
            and not any(c in url for c in " \t\r\n<>\"'()"):
        return url
    return None


def render(event: TicketEvent, *, language: str | None = None,
           tz: tzinfo | None = None, message_id: str = "") -> Message:
    """One event as one message."""
    tz = tz or zone("Asia/Shanghai")
    lang = language_of(event, language)
    headline = _headline(event, lang)
    title = _title(event, lang)
    site = bounded(event.site_name or event.site, 64)
    subject = f"[elvwatch] {headline} · {site}: {title}"
    fields = _fields(event, lang, tz)
    link = _link(event)
    link_label = _t(_LABELS["link"], lang)

    plain = [headline, title, ""]
    plain += [f"{label}: {value}" for label, value in fields]
    if link:
        plain += ["", f"{link_label}: {link}"]

    color = _COLOR.get(event.severity, "comment")
    markdown = [f"### {md_escape(headline)}",
                f'<font color="{color}">{md_escape(title)}</font>', ""]
    markdown += [f"> **{label}**: {md_escape(value)}" for label, value in fields]
    if link:
        markdown += ["", f"[{link_label}]({link})"]

    rows = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0">{html.escape(label)}</th>'
        f"<td>{html.escape(value)}</td></tr>" for label, value in fields)
    link_html = (f'<p><a href="{html.escape(link)}">{html.escape(link_label)}</a></p>'
                 if link else "")
    body_html = (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
                 f"<title>{html.escape(subject)}</title></head><body>"
                 f"<h2>{html.escape(headline)}</h2><p><strong>{html.escape(title)}</strong>"
                 f"</p><table>{rows}</table>{link_html}</body></html>")
    return Message(id=message_id, language=lang, subject=bounded(subject, 200),
                   plain="\n".join(plain) + "\n", html=body_html,
                   markdown="\n".join(markdown), events=(event,))


def render_summary(events: Sequence[TicketEvent], *, language: str | None = None,
                   tz: tzinfo | None = None, message_id: str = "") -> Message:
    """Several events as one message: what a storm becomes in a group chat."""
    if not events:
        raise ValueError("render_summary needs at least one event")
    if len(events) == 1:
        return render(events[0], language=language, tz=tz, message_id=message_id)
    tz = tz or zone("Asia/Shanghai")
    lang = language_of(events[0], language)
    ordered = sorted(events, key=lambda e: (e.severity != "emergency", e.severity != "major",
                                            e.at))
    urgent = sum(1 for e in events if e.severity == "emergency")
    sites = sorted({bounded(e.site_name or e.site, 64) for e in events})
    if lang == "zh-CN":
        headline = f"{len(events)} 条工单通知" + (f"({urgent} 条紧急)" if urgent else "")
        more = "…… 另有 {n} 条"
    else:
        headline = f"{len(events)} ticket notifications" + \
            (f" ({urgent} emergency)" if urgent else "")
        more = "… and {n} more"
    subject = f"[elvwatch] {headline} · {', '.join(sites[:3])}" + \
        ("…" if len(sites) > 3 else "")

    lines: list[tuple[TicketEvent, str]] = []
    for event in ordered[:SUMMARY_LINES]:
        where = " · ".join(bounded(p, 64) for p in
                           (event.site_name or event.site, event.device or "") if p)
        lines.append((event, f"{_headline(event, lang)} · {where} · {_title(event, lang)}"))
    rest = len(ordered) - len(lines)

    plain = [headline, ""] + [f"- {text} ({_when(e.at, tz)})" for e, text in lines]
    markdown = [f"### {md_escape(headline)}", ""]
    markdown += [f"- {md_escape(text)}" for _, text in lines]
    items = "".join(f"<li>{html.escape(text)} ({html.escape(_when(e.at, tz))})</li>"
                    for e, text in lines)
    if rest > 0:
        plain.append(more.format(n=rest))
        markdown.append(md_escape(more.format(n=rest)))
        items += f"<li>{html.escape(more.format(n=rest))}</li>"
    body_html = (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
                 f"<title>{html.escape(subject)}</title></head><body>"
                 f"<h2>{html.escape(headline)}</h2><ul>{items}</ul></body></html>")
    return Message(id=message_id, language=lang, subject=bounded(subject, 200),
                   plain="\n".join(plain) + "\n", html=body_html,
                   markdown="\n".join(markdown), events=tuple(events))


def event_json(event: TicketEvent) -> dict[str, object]:
    """The event as the stable JSON the generic webhook sends (and the log stores)."""
    return {
        "id": event.id, "kind": str(event.kind), "ticket": event.ticket, "at": event.at,
        "site": event.site, "site_name": event.site_name, "language": event.language,
        "severity": event.severity, "title_zh": event.title_zh, "title_en": event.title_en,
        "device": event.device, "system": event.system, "location": event.location,
        "state": event.state, "response_due": event.response_due,
        "resolve_due": event.resolve_due, "affected": list(event.affected),
        "actor": event.actor, "note": event.note, "url": event.url,
        "ticket_kind": event.ticket_kind, "device_name": event.device_name,
    }


def event_from_json(data: dict[str, object]) -> TicketEvent:
    """Inverse of :func:`event_json` (for events read back from the log)."""
    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    def opt_text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    def opt_float(key: str) -> float | None:
        value = data.get(key)
        return float(value) if isinstance(value, int | float) else None

    affected = data.get("affected")
    return TicketEvent(
        id=text("id"), kind=TicketEventKind(text("kind")), ticket=text("ticket"),
        at=opt_float("at") or 0.0, site=text("site"), site_name=text("site_name"),
        language=text("language"), severity=text("severity"), title_zh=text("title_zh"),
        title_en=text("title_en"), device=opt_text("device"), system=opt_text("system"),
        location=opt_text("location"), state=text("state"),
        response_due=opt_float("response_due"), resolve_due=opt_float("resolve_due"),
        affected=tuple(a for a in affected if isinstance(a, str))
        if isinstance(affected, list) else (),
        actor=text("actor") or "system", note=text("note"), url=opt_text("url"),
        ticket_kind=text("ticket_kind") or "fault", device_name=opt_text("device_name"))
