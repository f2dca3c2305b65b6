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

from elvwatch.tickets.glossary import term

ISO = (r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d|Z)?")
_ISO = re.compile(ISO)

ItemName = Callable[[str], str]
DeviceName = Callable[[str], str]
_SEV = r"(?:general|major|emergency)"
_NONE = r"\(the site names no escalation contacts\)"

# (pattern, zh, en): the groups go into the templates.  A group named ``at*`` is a time,
# ``which`` a deadline, ``old``/``new`` severities, ``item`` a checklist item id and
# ``items`` a comma-separated list of them, ``device`` a device id, ``channel`` how a
# request came in, ``late`` a sign-off after the system closed the ticket; ``phrases``
# and ``was`` are the system's own clauses, said in the site's words; ``rest`` is a
# person's text, kept as typed.
_PATTERNS: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p), zh, en) for p, zh, en in (
    (r"^recovered without intervention$", "设备自行恢复（无人处理）",
     "recovered without intervention"),
    (r"^device recovered; waiting for the engineer's service record$",
     "设备已恢复，等待工程师填写服务记录",
     "device recovered; waiting for the engineer's service record"),
    (r"^attached to (?P<ticket>T-[\w-]+)$", "并入工单 {ticket} 处理",
     "handled on ticket {ticket}"),
    (r"^still failing after the parent fault cleared$", "上联设备恢复后仍有故障",
     "still failing after the parent fault cleared"),
    (r"^fault recurred \(recurrence (?P<n>\d+)\)$", "故障复发（第 {n} 次）",
     "fault recurred (recurrence {n})"),
    (r"^emergency: contacts paged at once$", "紧急故障：已立即通知联系人",
     "emergency: contacts paged at once"),
    (r"^emergency, at once: escalated to (?P<names>.+)$", "紧急故障：已立即通知 {names}",
     "emergency: escalated to {names} at once"),
    (r"^emergency, at once: escalated " + _NONE + "$",
     "紧急故障：已升级（本小区未登记升级联系人）",
     "emergency: escalated (the site names no escalation contacts)"),
    (r"^device healthy for (?P<n>\d+) polls$", "系统连续 {n} 次检测设备正常",
     "monitoring saw the device healthy {n} times in a row"),
    (r"^verified recovery$", "系统确认恢复后关闭", "closed after the recovery was confirmed"),
    (r"^recovery confirmed by hand$", "人工确认恢复", "recovery confirmed by hand"),
    (r"^accepted by (?P<name>.+)$", "{name} 验收通过", "accepted by {name}"),
    (r"^auto-closed: no sign-off within (?P<n>[\d.]+) days$",
     "{n} 天内未签字验收，系统自动关闭", "closed by the system: no sign-off within {n} days"),
    (r"^(?P<which>response|resolve) deadline passed \(due (?P<at>" + ISO + r")\)$",
     "{which}期限已过（期限 {at}）", "{which} deadline passed (due {at})"),
    (r"^(?P<which>response|resolve) deadline passed: escalation contacts told$",
     "{which}期限已过：已通知升级联系人", "{which} deadline passed: escalation contacts told"),
    (r"^(?P<which>response|resolve) deadline passed: escalated to (?P<names>.+)$",
     "{which}期限已过：已通知 {names}", "{which} deadline passed: escalated to {names}"),
    (r"^(?P<which>response|resolve) deadline passed: escalated " + _NONE + "$",
     "{which}期限已过：已升级（本小区未登记升级联系人）",
     "{which} deadline passed: escalated (the site names no escalation contacts)"),
    (r"^due (?P<period>\d{4}-(?:\d\d|Q[1-4]))$", "保养周期 {period}，期末前完成",
     "due by the end of {period}"),
    (r"^repair due (?P<at>" + ISO + r")(?: \((?P<was>was due [^)]*)\))?(?:: (?P<rest>.*))?$",
     "修复期限商定为 {at}{was}{rest}", "repair due {at}{was}{rest}"),
    (r"^renegotiated(?:: (?P<rest>.*))?$", "重新商定{rest}", "renegotiated{rest}"),
    (r"^reclassified (?P<old>" + _SEV + r") → (?P<new>" + _SEV + r")$",
     "级别由{old}调整为{new}", "severity {old} → {new}"),
    (r"^(?P<old>" + _SEV + r") → (?P<new>" + _SEV + r"): (?P<phrases>.*)$",
     "级别由{old}调整为{new}：{phrases}", "severity {old} → {new}: {phrases}"),
    (r"^(?P<device>[A-Za-z0-9][\w.:-]*) replaced by (?P<who>[^:]+): (?P<phrases>.*)$",
     "{device} 已由 {who} 更换：{phrases}", "{device} replaced by {who}: {phrases}"),
    (r"^claim (?P<claim>\S+) for (?P<part>.+?) with (?P<vendor>[^;]+)(?P<phrases>(?:; .*)?)$",
     "厂商保修索赔 {claim}：{part}，厂商联系人 {vendor}{phrases}",
     "warranty claim {claim}: {part}, vendor contact {vendor}{phrases}"),
    (r"^claim (?P<claim>\S+) updated(?P<phrases>(?:; .*)?)$",
     "厂商保修索赔 {claim} 已更新{phrases}", "warranty claim {claim} updated{phrases}"),
    (r"^signed off by (?P<name>.+?) on (?:paper receipt (?P<receipt>\S+)|a paper receipt)"
     r"(?P<late> after the auto-close)?(?:: (?P<rest>.*))?$",
     "{name} 在纸质回执单{receipt}上验收签字{late}{rest}",
     "signed off by {name} on paper receipt{receipt}{late}{rest}"),
    (r"^signed off by (?P<name>.+?)(?P<late> after the auto-close)?(?:: (?P<rest>.*))?$",
     "{name} 验收签字{late}{rest}", "signed off by {name}{late}{rest}"),
    (r"^rating (?P<n>[1-5])(?:: (?P<rest>.*))?$", "满意度 {n}/5{rest}", "rating {n}/5{rest}"),
    (r"^(?P<who>[^:]{1,200}): (?P<work>.*) \(service record after the device recovered\)$",
     "{who}：{work}（设备恢复后补填服务记录）",
     "{who}: {work} (service record written after the device recovered)"),
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
# The system's clauses inside compound notes (a renegotiation, a reclassification, a
# replacement, a warranty claim), longest first so "repair due to agree" wins.
_PHRASES = (("repair due to agree", "修复期限待商定"), ("was due ", "原期限 "),
            ("; breached", "，已超时"), ("respond by ", "响应期限 "), ("repair due ", "修复期限 "),
            ("same facts as before", "档案信息不变"), ("warranty_until ", "保修期至 "),
            ("serial ", "序列号 "), ("model ", "型号 "), ("vendor ", "厂商 "),
            ("installed ", "安装日期 "), ("sent ", "寄出 "), ("returned ", "返回 "),
            ("; ", "；"), (" (", "（"), (")", "）"))


def local_time(text: str, timezone: str) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM`` in ``timezone`` (a time without an
    offset is taken as UTC, as the store writes it)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _times(text: str, timezone: str) -> str:
    return _ISO.sub(lambda m: local_time(m.group(0), timezone), text)


def _phrases(text: str, zh: bool, timezone: str) -> str:
    text = _times(text, timezone)
    if zh:
        for english, chinese in _PHRASES:
            text = text.replace(english, chinese)
    return text


def local_note(note: str, language: str, timezone: str,
               item_name: ItemName = lambda item: item,
               device_name: DeviceName = lambda device: device) -> str:
    """``note`` in ``language`` with its times in ``timezone``."""
    zh = language == "zh-CN"
    for pattern, zh_text, en_text in _PATTERNS:
        match = pattern.match(note)
        if match is None:
            continue
        groups = match.groupdict()
        values: dict[str, str] = {}
        for key, value in groups.items():
            values[key] = _value(key, value or "", zh, language, timezone, item_name,
                                 device_name, "channel" in groups)
        return (zh_text if zh else en_text).format(**values)
    return _times(note, timezone)


def _value(key: str, value: str, zh: bool, language: str, timezone: str,
           item_name: ItemName, device_name: DeviceName, heard: bool) -> str:
    if not value:
        return ""
    if key.startswith("at"):
        stamp = local_time(value, timezone)
        return ((" " if zh else " at ") + stamp) if key == "at" and heard else stamp
    if key in ("old", "new"):
        return term("severity", value, language)
    if key == "which":
        return _WHICH[value][0 if zh else 1]
    if key == "item":
        return item_name(value) or value
    if key == "items":
        names = [item_name(i.strip()) or i.strip() for i in value.split(",") if i.strip()]
        joined = ("、" if zh else ", ").join(names)
        return (("；不合格：" if zh else "; not ok: ") + joined) if names else ""
    if key == "device":
        return device_name(value) or value
    if key == "who":
        return person(value, language)
    if key == "channel":
        return term("channel", value.replace("-", "_"), language)
    if key == "contact":
        return f"（{value}）" if zh else f" ({value})"
    if key == "receipt":
        return f" {value} "
    if key == "late":
        return "（系统自动关闭后补签，工单不重开）" if zh else \
            " after the system closed the ticket (not reopened)"
    if key == "was":
        said = _phrases(value, zh, timezone)
        return f"（{said}）" if zh else f" ({said})"
    if key == "phrases":
        return _phrases(value, zh, timezone)
    if key == "rest":
        return ("：" if zh else ": ") + value
    return value


# Work a record says in the system's words: a work order completed with no words of the
# engineer's (tickets/actions.py complete_preventive).
_WORK = {"checklist done": ("按保养项目完成定期保养", "checklist done")}


def local_work(work: str, language: str) -> str:
    """A service record's work done as the site reads it."""
    pair = _WORK.get(work)
    return work if pair is None else pair[0 if language == "zh-CN" else 1]


def event_note(kind: str, actor: str, note: str, language: str, timezone: str,
               item_name: ItemName = lambda item: item,
               device_name: DeviceName = lambda device: device) -> str:
    """What the timeline shows for an audit event: a fault ticket's opening note is the
    rule expression, which the site does not read."""
    if kind == "opened" and actor == "system":
        return ""
    return local_note(note, language, timezone, item_name, device_name) if note else ""


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
