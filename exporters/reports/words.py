"""The reports' words in Chinese and English, and value formatting shared by HTML/CSV/text.

Durations are written H:MM:SS (exact to the second, hours not folded into days) so
the figures read the same in both languages and compare against the transitions.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

WORDS: dict[str, tuple[str, str]] = {
    "availability_title": ("设备运行情况记录", "Equipment operation record"),
    "sla_title": ("服务水平报告", "SLA report"),
    "service_title": ("服务记录", "Service records"),
    "receipt_title": ("服务回执单", "Service receipts"),
    "feedback_title": ("用户回访反馈信息表", "Return-visit feedback"),
    "archive_title": ("设备档案", "Equipment archive"),
    "brief_title": ("上门前简报", "Pre-visit brief"),
    "site": ("项目", "Site"),
    "period": ("期间", "Period"),
    "generated": ("生成时间", "Generated"),
    "device": ("设备", "Device"),
    "name": ("名称", "Name"),
    "system": ("系统", "System"),
    "kind": ("类型", "Kind"),
    "location": ("位置", "Location"),
    "availability": ("可用率 %", "Availability %"),
    "downtime": ("故障时长", "Downtime"),
    "downtime_s": ("故障时长(秒)", "Downtime (s)"),
    "up_s": ("正常(秒)", "Up (s)"),
    "degraded_s": ("降级(秒)", "Degraded (s)"),
    "unknown_s": ("未知(秒)", "Unknown (s)"),
    "not_in_service_s": ("未在册(秒)", "Not in service (s)"),
    "down_at_start": ("期初故障", "Down at start"),
    "faults": ("故障次数", "Faults"),
    "fault_tickets": ("故障工单", "Fault tickets"),
    "tickets": ("工单", "Tickets"),
    "availability_note": (
        "可用率 = (正常 + 降级) ÷ (正常 + 降级 + 故障)；状态未知及未在册时间不计入。",
        "Availability = (up + degraded) ÷ (up + degraded + down); unknown time and time "
        "before the device was added or after it was removed are left out."),
    "severity": ("等级", "Severity"),
    "emergency": ("紧急", "emergency"),
    "major": ("重大", "major"),
    "general": ("一般", "general"),
    "count": ("数量", "Count"),
    "responded": ("已响应", "Responded"),
    "not_responded": ("未响应", "no response"),
    "resolved": ("已修复", "Resolved"),
    "response_median": ("响应时间中位数", "Response median"),
    "response_worst": ("最长响应时间", "Response worst"),
    "repair_median": ("修复时间中位数", "Repair median"),
    "repair_worst": ("最长修复时间", "Repair worst"),
    "response_breaches": ("响应超时", "Response breaches"),
    "resolve_breaches": ("修复超时", "Repair breaches"),
    "breaches": ("超时明细", "Breaches"),
    "response_s": ("响应用时(秒)", "Response time (s)"),
    "repair_s": ("修复用时(秒)", "Repair time (s)"),
    "ticket": ("工单号", "Ticket"),
    "which": ("项目", "Deadline"),
    "response": ("响应", "response"),
    "resolve": ("修复", "repair"),
    "due": ("时限", "Due"),
    "met_at": ("完成时间", "Met at"),
    "late_by": ("超时", "Late by"),
    "reason": ("原因", "Reason"),
    "reason_late": ("{which}逾期 {late} 完成", "{which} met {late} late"),
    "reason_open": ("截至报告时未{which}，已超时 {late}", "{which} not met, {late} overdue"),
    "reason_recorded": ("系统于 {at} 记录超时", "escalated at {at}"),
    "reason_replaced": ("{which}期限届满未完成，超时 {late} 后改期",
                        "{which} not met, {late} overdue when replaced"),
    "reason_superseded": ("{at} 改为新期限（{why}），超时仍计",
                          "replaced at {at} ({why}); the breach stands"),
    "preventive_summary": ("定期保养工单 {due} 张，按期完成 {done} 张",
                           "Preventive work orders: {due}, done in time: {done}"),
    "opened": ("开单时间", "Opened"),
    "state": ("状态", "State"),
    "title": ("内容", "Title"),
    "engineer": ("工程师", "Engineer"),
    "work_done": ("处理情况", "Work done"),
    "parts": ("更换配件", "Parts replaced"),
    "at": ("时间", "Time"),
    "signed_by": ("用户代表签字", "Signed by"),
    "comment": ("意见", "Comment"),
    "unsigned": ("未签字", "not signed"),
    "rating": ("满意度(1-5)", "Rating (1-5)"),
    "recorded_by": ("回访人", "Recorded by"),
    "checklist": ("检查项目", "Checklist"),
    "vendor": ("品牌", "Vendor"),
    "model": ("型号", "Model"),
    "serial": ("序列号", "Serial"),
    "firmware": ("固件", "Firmware"),
    "host": ("地址", "Host"),
    "installed": ("安装日期", "Installed"),
    "warranty_until": ("保修期至", "Warranty until"),
    "warranty": ("保修", "Warranty"),
    "removed_at": ("移除时间", "Removed"),
    "cov_warranty": ("保修期内，向厂家索赔", "under warranty: claim"),
    "cov_at_cost": ("已过保，按成本收费", "out of warranty: at cost"),
    "cov_unknown": ("保修情况不明", "warranty unknown"),
    "open_tickets": ("未完成工单（按时限排序）", "Open tickets (by deadline)"),
    "to_visit": ("需上门设备（按位置）", "Devices to visit (by location)"),
    "parts_needed": ("可能需要的配件", "Parts likely needed"),
    "preventive_due": ("到期保养项目", "Preventive checklist due"),
    "awaiting_sign_off": ("待用户签字确认", "Awaiting sign-off"),
    "contacts": ("联系人", "Contacts"),
    "role": ("职务", "Role"),
    "phone": ("电话", "Phone"),
    "email": ("邮箱", "Email"),
    "since": ("起始", "Since"),
    "to_agree": ("待商定", "to agree"),
    "overdue": ("已超时", "OVERDUE"),
    "no_location": ("未登记位置", "no location"),
    "none": ("无", "none"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "ok": ("正常", "ok"),
    "not_ok": ("异常", "not ok"),
    "down": ("故障", "down"),
    "degraded": ("降级", "degraded"),
    "up": ("正常", "up"),
    "unknown": ("未知", "unknown"),
    "open": ("待响应", "open"),
    "acknowledged": ("处理中", "acknowledged"),
    "verified": ("系统确认恢复", "recovery confirmed"),
    "closed": ("已关闭", "closed"),
    "fault": ("故障", "fault"),
    "preventive": ("保养", "preventive"),
    "total": ("合计", "Total"),
}


def word(key: str, language: str) -> str:
    zh, en = WORDS.get(key, (key, key))
    return zh if language == "zh-CN" else en


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    sign = "-" if whole < 0 else ""
    whole = abs(whole)
    return f"{sign}{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def when(seconds: float | None, timezone: str) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def number(seconds: float) -> str:
    """Seconds for CSV: as many decimals as the microsecond data needs, no more."""
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def percent(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"
