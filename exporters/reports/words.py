"""The reports' words in Chinese and English, and value formatting shared by HTML/CSV/text.

Durations are written H:MM:SS (exact to the second, hours not folded into days) so
the figures read the same in both languages and compare against the transitions.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from elvwatch.tickets.glossary import GLOSSARY

WORDS: dict[str, tuple[str, str]] = {
    "availability_title": ("设备运行情况记录", "Equipment operation record"),
    "sla_title": ("服务水平报告", "SLA report"),
    "service_title": ("服务记录", "Service records"),
    "service_forms_title": ("服务记录、服务回执单及用户回访反馈信息表",
                            "Service records, service receipts and return-visit feedback"),
    "receipt_title": ("服务回执单", "Service receipts"),
    "feedback_title": ("用户回访反馈信息表", "Return-visit feedback"),
    "archive_title": ("设备档案", "Equipment archive"),
    "audit_title": ("工单处理记录", "Ticket audit trails"),
    "state_log_title": ("设备状态变化记录", "Device state-change log"),
    "cover_title": ("维护资料移交清单", "Maintenance records handover"),
    "contents": ("移交内容", "Contents"),
    "document": ("资料名称", "Document"),
    "files": ("文件", "Files"),
    "records": ("记录数", "Records"),
    "number": ("序号", "No."),
    "address": ("地址", "Address"),
    "manifest_note": ("每个文件的大小及 SHA-256 校验值见 manifest.json。",
                      "manifest.json lists each file's size and SHA-256."),
    "photos_title": ("现场照片", "Photos taken on site"),
    "photos_omitted": ("另有 {n} 张照片未放入移交包（照片合计超过 {mb} MB，或文件缺失）："
                       "manifest.json 列出每张照片所属工单，可在工单页面查看。",
                       "{n} more photos are not in the package (over {mb} MB of photos, or "
                       "the file is missing): manifest.json lists each with its ticket, "
                       "whose page shows it."),
    "handover_signatures": ("移交签字", "Signatures"),
    "handed_over_by": ("移交方（维护单位）签字", "Handed over by (maintenance company)"),
    "received_by": ("接收方（甲方）签字", "Received by (property company)"),
    "event": ("事件", "Event"),
    "actor": ("操作人", "By"),
    "from_state": ("原状态", "From"),
    "to_state": ("新状态", "To"),
    "brief_title": ("上门前简报", "Pre-visit brief"),
    "site": ("项目", "Site"),
    "period": ("期间", "Period"),
    "generated": ("生成时间", "Generated"),
    "device": ("设备", "Device"),
    "device_id": ("设备编号", "Device ID"),
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
    "count": ("数量", "Count"),
    "responded": ("已响应", "Responded"),
    "resolved_count": ("已修复", "Resolved"),
    "not_responded": ("未响应", "no response"),
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
    "preventive_summary": ("定期保养工单 {due} 张：按期完成 {done} 张，逾期完成 {done_late} 张，"
                           "逾期未完成 {late} 张，未到期 {not_yet_due} 张",
                           "Preventive work orders: {due}; done in time {done}, done late "
                           "{done_late}, late {late}, not yet due {not_yet_due}"),
    "preventive_title": ("定期保养工单", "Preventive work orders"),
    "done_in_time": ("按期完成", "done in time"),
    "done_late": ("逾期完成", "done late"),
    "late": ("逾期未完成", "late"),
    "not_yet_due": ("未到期", "not yet due"),
    "completed_at": ("完成时间", "Completed"),
    "follow_ups": ("后续工单", "Follow-up tickets"),
    "reason_replaced": ("{which}期限届满未完成，超时 {late} 后改期",
                        "{which} not met, {late} overdue when replaced"),
    "reason_superseded": ("{at} 改为新期限（{why}），超时仍计",
                          "replaced at {at} ({why}); the breach stands"),
    "opened": ("开单时间", "Opened"),
    "state": ("状态", "State"),
    "title": ("内容", "Title"),
    "engineer": ("工程师", "Engineer"),
    "work_done": ("处理情况", "Work done"),
    "cause": ("故障原因", "Cause"),
    "parts": ("更换配件", "Parts replaced"),
    "part": ("配件", "Part"),
    "quantity": ("数量", "Qty"),
    "unit_price": ("单价(元)", "Unit price (CNY)"),
    "amount": ("金额(元)", "Amount (CNY)"),
    "charges": ("收费合计(元)", "Charges (CNY)"),
    "not_priced": ("未定价", "not priced"),
    "at": ("时间", "Time"),
    "arrived": ("到场时间", "Arrived"),
    "departed": ("离场时间", "Left"),
    "reported": ("报修时间", "Reported"),
    "signed_by": ("用户代表签字", "Signed by"),
    "signed_after_close": ("（系统自动关闭后补签）",
                           "(signed after the system closed the ticket)"),
    "engineer_signature": ("工程师签字", "Engineer's signature"),
    "client_opinion": ("用户意见", "Client's comments"),
    "date": ("日期", "Date"),
    "comment": ("意见", "Comment"),
    "note": ("说明", "Note"),
    "unsigned": ("未签字", "not signed"),
    "rating": ("满意度(1-5)", "Rating (1-5)"),
    "recorded_by": ("回访人", "Recorded by"),
    "contact": ("被访人", "Visited"),
    "quality_issue": ("是否工程质量问题", "Workmanship problem?"),
    "not_assessed": ("未判定", "not assessed"),
    "solution": ("处理方案", "Proposed solution"),
    "outcome": ("处理结果", "Outcome"),
    "periodic_visit": ("定期回访", "periodic return visit"),
    "checklist": ("保养项目", "Checklist"),
    "result": ("结果", "Result"),
    "photos": ("现场照片", "Photos"),
    "sheet_of": ("第 {n} / {total} 张", "sheet {n} of {total}"),
    "vendor": ("品牌", "Vendor"),
    "model": ("型号", "Model"),
    "serial": ("序列号", "Serial"),
    "firmware": ("固件", "Firmware"),
    "host": ("地址", "Host"),
    "installed": ("安装日期", "Installed"),
    "warranty_until": ("保修期至", "Warranty until"),
    "warranty": ("保修", "Warranty"),
    "removed_at": ("移除时间", "Removed"),
    "open_tickets": ("未完成工单（按时限排序）", "Open tickets (by deadline)"),
    "to_visit": ("需上门设备（按位置）", "Devices to visit (by location)"),
    "parts_needed": ("可能需要的配件", "Parts likely needed"),
    "preventive_due": ("到期定期保养", "Preventive maintenance due"),
    "awaiting_sign_off": ("待用户签字确认", "Awaiting sign-off"),
    "contacts": ("联系人", "Contacts"),
    "dispatch": ("派工", "Dispatch"),
    "eta": ("预计到场", "expected"),
    "repair_history": ("维修记录", "Repair history"),
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
    "ok": ("合格", "ok"),
    "not_ok": ("不合格", "not ok"),
    "total": ("合计", "Total"),
}


# Ticket states, severities, device states, ticket kinds and warranty coverage are the
# glossary's words (tickets/glossary.py), shared with the pages and the messages.
for _group, _prefix in (("state", ""), ("severity", ""), ("device_state", ""),
                        ("ticket_kind", ""), ("coverage", "cov_")):
    for _key, _pair in GLOSSARY[_group].items():
        WORDS[_prefix + _key] = _pair


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


def yuan(cents: int | None) -> str:
    """Fen as yuan with two decimals ("12.50"); "-" when not priced."""
    if cents is None:
        return "-"
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
