"""Audit notes as the site reads them: the system's notes in the site's language, times
in the site's time zone.

The audit trail keeps what was written (English notes from the system, UTC times,
checklist item ids) so logs, the CLI and the API stay stable; pages, reports and
notifications show :func:`local_note`.  A note nobody wrote a pattern for is shown as
it was written — a person's own words are never rewritten — except that ISO times in
it are shown in local time.  The rule expression a fault ticket was opened with
(``state == "down" (state=down)``) is for engineers' tools only: :func:`event_note`
leaves it out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from tickets.glossary import term

ISO = (r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d|Z)?")
_ISO = re.compile(ISO)

ItemName = Callable[[str], str]

# (pattern, zh, en): the groups go into the templates; a group named ``at*`` is a time,
# ``items`` a comma-separated list of checklist item ids, ``which`` a deadline.
_PATTERNS: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p), zh, en) for p, zh, en in (
    (r"^recovered without intervention$", "设备自行恢复（无人处理）",
     "recovered without intervention"),
    (r"^attached to (?P<ticket>T-[\w-]+)$", "并入工单 {ticket} 处理",
     "handled on ticket {ticket}"),
    (r"^still failing after the parent fault cleared$", "上联设备恢复后仍有故障",
     "still failing after the parent fault cleared"),
    (r"^fault recurred \(recurrence (?P<n>\d+)\)$", "故障复发（第 {n} 次）",
     "fault recurred (recurrence {n})"),
    (r"^emergency: contacts paged at once$", "紧急故障：已立即通知联系人",
     "emergency: contacts paged at once"),
    (r"^device healthy for (?P<n>\d+) polls$", "系统连续 {n} 次检测设备正常",
     "monitoring saw the device healthy {n} times in a row"),
    (r"^verified recovery$", "系统确认恢复后关闭", "closed after the recovery was confirmed"),
    (r"^(?P<which>response|resolve) deadline passed \(due (?P<at>" + ISO + r")\)$",
     "{which}期限已过（期限 {at}）", "{which} deadline passed (due {at})"),
    (r"^(?P<which>response|resolve) deadline passed: escalation contacts told$",
     "{which}期限已过：已通知升级联系人", "{which} deadline passed: escalation contacts told"),
    (r"^due (?P<period>\d{4}-(?:\d\d|Q[1-4]))$", "保养周期 {period}，期末前完成",
     "due by the end of {period}"),
    (r"^repair due (?P<at>" + ISO + r")(?:: (?P<rest>.*))?$", "修复期限商定为 {at}{rest}",
     "repair due {at}{rest}"),
    (r"^signed off by (?P<name>.+?)(?:: (?P<rest>.*))?$", "{name} 验收签字{rest}",
     "signed off by {name}{rest}"),
    (r"^rating (?P<n>[1-5])(?:: (?P<rest>.*))?$", "满意度 {n}/5{rest}", "rating {n}/5{rest}"),
    (r"^(?P<who>[^:]{1,200}): (?P<solution>.*) \(ETA (?P<at>" + ISO + r")\)(?:; (?P<rest>.*))?$",
     "派 {who}：{solution}（预计到场 {at}）{rest}",
     "{who} sent: {solution} (expected {at}){rest}"),
    (r"^schedule from (?P<who>[^:]+): (?P<detail>.*)$", "定期保养发现问题（{who}）：{detail}",
     "found on preventive maintenance by {who}: {detail}"),
    (r"^(?P<channel>phone|wechat|walk-in|email|other) from (?P<who>.+?)"
     r"(?: \((?P<contact>[^)]*)\))?(?: at (?P<at>" + ISO + r"))?: (?P<detail>.*)$",
     "{channel}报修：{who}{contact}{at}：{detail}",
     "by {channel} from {who}{contact}{at}: {detail}"),
    (r"^follow-up (?P<ticket>T-[\w-]+): (?P<item>.+)$", "开后续工单 {ticket}：{item} 不合格",
     "follow-up {ticket}: {item} not ok"),
    (r"^(?P<who>[^:]{1,200}): checklist done(?:; not ok: (?P<items>.*))?$",
     "{who}：保养完成{items}", "{who}: checklist done{items}"),
)]
_WHICH = {"response": ("响应", "response"), "resolve": ("修复", "repair")}


def local_time(text: str, timezone: str) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM`` in ``timezone`` (a time without an
    offset is taken as UTC, as the store writes it)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def local_note(note: str, language: str, timezone: str,
               item_name: ItemName = lambda item: item) -> str:
    """``note`` in ``language`` with its times in ``timezone``."""
    zh = language == "zh-CN"
    for pattern, zh_text, en_text in _PATTERNS:
        match = pattern.match(note)
        if match is None:
            continue
        values: dict[str, str] = {}
        for key, value in match.groupdict().items():
            value = value or ""
            if key.startswith("at") and value:
                value = (" " if zh else " at ") + local_time(value, timezone) \
                    if key == "at" and "channel" in match.groupdict() \
                    else local_time(value, timezone)
            elif key == "item":
                value = item_name(value) or value
            elif key == "channel":
                value = term("channel", value.replace("-", "_"), language)
            elif key == "contact" and value:
                value = f"（{value}）" if zh else f" ({value})"
            elif key == "which":
                value = _WHICH[value][0 if zh else 1]
            elif key == "items":
                names = [item_name(i.strip()) or i.strip() for i in value.split(",") if i.strip()]
                joined = ("、" if zh else ", ").join(names)
                value = (("；不合格：" if zh else "; not ok: ") + joined) if names else ""
            elif key == "rest" and value:
                value = ("：" if zh else ": ") + value
            values[key] = value
        return (zh_text if zh else en_text).format(**values)
    return _ISO.sub(lambda m: local_time(m.group(0), timezone), note)


def event_note(kind: str, actor: str, note: str, language: str, timezone: str,
               item_name: ItemName = lambda item: item) -> str:
    """What the timeline shows for an audit event: a fault ticket's opening note is the
    rule expression, which the site does not read."""
    if kind == "opened" and actor == "system":
        return ""
    return local_note(note, language, timezone, item_name) if note else ""


# An engineer acting through a personal link is recorded as "王工 (wang)": the name to
# read, the account to trace.
_ACCOUNT = re.compile(r"^(?P<name>.+?) \((?P<account>[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})\)$")


def actor_of(name: str, account: str) -> str:
    """The audit trail's actor for an engineer's account."""
    return f"{name} ({account})"[:128]


def person(actor: str, language: str) -> str:
    """Who acted, as the site reads it: the system in words, an engineer by name."""
    if actor == "system":
        return "系统" if language == "zh-CN" else "system"
    match = _ACCOUNT.match(actor)
    return match.group("name") if match else actor


def display_title(title_zh: str, title_en: str, device: str | None, name: str | None,
                  language: str) -> str:
    """A ticket's title with its device by name: titles are stored as
    ``"<device id> <rule name>"`` (``"<device id>: <rule name>"`` in English)."""
    title = title_zh if language == "zh-CN" else title_en
    if device and name and title.startswith(device):
        rest = title[len(device):]
        if language == "zh-CN":
            return f"{name}{rest}" if rest.startswith(" ") else title
        return f"{name}{rest}" if rest.startswith(":") else title
    return title
