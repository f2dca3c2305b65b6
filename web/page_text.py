"""The words of the web pages in Chinese and English, and how a page picks its language.

The language of a page: ``?lang=`` (remembered in a cookie) if given; otherwise the
site's configured language, unless the browser's Accept-Language rules it out and
accepts the other one — a community's pages are Chinese for everyone who reads Chinese,
and English for a browser that asks for English only.
"""

from __future__ import annotations

from elvwatch.tickets.glossary import GLOSSARY

LANGUAGES = ("zh-CN", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "overview": "总览", "silences": "屏蔽", "sites": "小区", "site": "小区",
        "devices": "设备", "device": "设备", "device_number": "设备编号", "tickets": "工单",
        "ticket": "工单",
        "open_tickets": "未关闭工单", "breached": "已超时", "attention": "需要处理的设备",
        "no_attention": "所有设备正常。", "no_tickets": "没有未关闭的工单。",
        "since": "自", "cause": "原因", "location": "位置",
        "depends_on": "上联设备", "dependents": "下联设备", "kind": "类型",
        "system": "系统", "host": "地址", "name": "名称", "vendor": "厂商",
        "model": "型号", "firmware": "固件", "serial": "序列号", "reported": "设备上报",
        "configured": "档案", "installed": "安装日期", "warranty": "保修",
        "warranty_until": "保修至 {date}，剩余 {days} 天", "warranty_expired":
        "保修已于 {date} 到期：更换部件按成本收费", "warranty_unknown": "无保修记录",
        "tags": "标签", "archive": "设备档案", "checks": "检测项", "check": "检测",
        "status": "状态", "last_seen": "最近检测", "latency": "耗时", "error": "错误",
        "values": "数值", "history": "状态变化", "no_history": "暂无状态变化记录。",
        "from_to": "变化", "at": "时间", "contacts": "联系人", "address": "地址",
        "contract": "维保合同", "contract_from": "自 {start} 起 {months} 个月",
        "respond_by": "响应期限", "resolve_by": "修复期限", "due_by": "保养期限",
        "to_agree": "与甲方商定",
        "left": "剩余 {span}", "overdue": "已超时 {span}", "met": "已于 {when} 完成",
        "severity": "级别", "timeline": "处理记录", "actor": "操作人", "note": "说明",
        "affected": "受影响设备",
        "service_records": "服务记录", "engineer": "工程师", "work_done": "处理内容",
        "parts": "更换部件", "sign_offs": "甲方验收签字", "feedback": "回访反馈",
        "rating": "评分", "checklist": "保养项目", "ok": "合格", "not_ok": "不合格",
        "sign_off": "验收签字", "sign_off_intro":
        "请确认故障已排除、设备运行正常后签字验收。",
        "sign_off_late_intro": "此工单因未及时验收已由系统自动关闭。您仍可签字验收："
                               "签字将记入处理记录和服务回执单，工单不会重新打开。",
        "your_name": "您的姓名", "comment": "意见（可选）", "submit_sign_off": "确认验收",
        "signed": "用户已验收，谢谢。",
        "sign_off_not_now": "此工单当前为「{state}」，修复后才能验收。",
        "sign_off_failing": "设备仍在故障中，恢复正常后才能验收。",
        "sign_off_done": "此工单用户已验收。", "name_required": "请填写姓名。",
        "sign_off_refused": "未能验收：工单状态已变化，请查看下方记录。", "sign_off_hint":
        "甲方验收：用 elvwatch tickets signoff-link {number} 生成签字链接。",
        "recurrences": "复发次数", "recovered": "设备自行恢复", "fault_active": "故障持续中",
        "fault_cleared": "故障已消除", "period": "周期", "who": "创建人", "why": "原因",
        "matchers": "匹配", "starts": "开始", "until": "结束", "active": "生效中",
        "pending": "未开始", "expired": "已结束", "no_silences": "当前没有屏蔽。",
        "show_expired": "显示已结束的屏蔽", "hide_expired": "只看当前屏蔽",
        "updated": "更新于", "not_found": "未找到", "unavailable": "服务暂不可用",
        "all_devices": "全部设备", "none": "无", "opened": "开单",
        "minutes": "{n} 分", "hours": "{n} 小时", "days": "{n} 天", "ago": "{span}前",
        "just_now": "刚刚",
        "language": "English", "behind": "上联故障：{device}", "summary": "摘要",
        "reports": "报表", "this_month": "本月", "contract_period": "合同期",
        "report_availability": "设备运行情况记录", "report_sla": "服务水平报告",
        "report_service": "服务记录及回访",
        "previsit_brief": "上门前简报", "back_to_site": "返回本小区页面",
        "link_needed": "需要查看链接", "link_needed_text":
        "这些页面只对本机或持有查看链接的人开放。请值班工程师用 elvwatch link 生成链接，"
        "在手机上打开。",
        "link_expired": "链接已过期", "link_expired_text":
        "这个查看链接已过期。请值班工程师重新生成：elvwatch link --site 小区编号。",
        "link_invalid": "链接无效", "link_invalid_text":
        "这个查看链接无效（被改动过，或系统令牌已更换）。请值班工程师重新生成："
        "elvwatch link --site 小区编号。",
        "link_other_site": "不在链接范围内", "link_other_site_text":
        "这个链接只能查看「{name}」的页面。",
        "link_revoked": "链接已停用",
        "engineer_link_invalid_text": "这个工程师链接无效（被改动过，或系统令牌已更换）。"
        "请管理员重新生成：elvwatch link --engineer 工号。",
        "engineer_link_expired_text": "这个工程师链接已过期。请管理员重新生成：elvwatch link "
        "--engineer 工号。",
        "engineer_link_revoked_text": "这个工程师链接已被停用，或该工程师已不在名单中。",
        "engineer_other_site": "不在您负责的小区", "engineer_other_site_text":
        "您的链接只能处理这些小区的工单：{sites}。",
        "form_expired": "表单已失效", "form_expired_text":
        "这个表单不是从您当前的链接打开的。请返回工单页面重新提交。",
        "signed_in_as": "当前工程师：{name}", "field_work": "现场处理",
        "dispatch": "派工", "solution": "解决方案", "assignee": "派往工程师", "eta": "预计到场",
        "submit_dispatch": "确认派工", "arrive": "到场签到", "depart": "离场",
        "on_site_since": "您自 {when} 起在现场", "visits": "到场记录",
        "arrived": "到场", "departed": "离场", "still_on_site": "仍在现场",
        "service_record": "填写服务记录", "fault_cause": "故障原因", "part": "配件",
        "quantity": "数量", "unit_price": "单价（元）", "consumable": "耗材",
        "submit_record": "提交服务记录", "complete_checklist": "填写保养项目",
        "result": "结果", "item_device": "涉及设备", "submit_checklist": "提交保养结果",
        "photos": "现场照片", "photo": "照片", "caption": "说明（可选）",
        "upload_photo": "上传照片", "paper_receipt": "登记纸质回执单",
        "receipt_number": "回执单编号", "signer": "签字人", "submit_paper": "登记验收",
        "return_visit": "用户回访", "contact": "被访人", "quality_issue": "是否工程质量问题",
        "yes": "是", "no": "否", "not_assessed": "未判定", "outcome": "处理结果",
        "submit_return_visit": "登记回访", "signoff_link": "生成甲方验收链接",
        "signoff_link_ready": "请把这个链接发给甲方代表（{hours} 小时内有效）：",
        "new_ticket": "登记报修（电话、微信、上门）", "reporter": "报修人",
        "reporter_contact": "联系电话", "channel": "报修方式", "description": "报修内容",
        "where": "设备或位置", "no_device": "（不指定设备）", "submit_new_ticket": "登记报修",
        "periodic_visit": "定期回访", "handover": "维护资料移交包（zip）",
        "done_dispatch": "已派工。", "done_arrive": "已登记到场。", "done_depart": "已登记离场。",
        "done_record": "服务记录已提交。", "done_complete": "保养结果已提交。",
        "done_photo": "照片已上传。", "done_paper_receipt": "已登记纸质回执，用户已验收。",
        "done_return_visit": "回访已登记。", "done_new_ticket": "报修已登记：{number}",
        "action_refused": "操作未完成：工单状态已变化（当前：{state}）。",
        "bad_input": "请检查填写的内容：{detail}", "field_required": "请填写：{field}",
        "photo_too_big": "照片太大（最大 {mb} MB）。",
        "photo_not_image": "只能上传 JPEG 或 PNG 照片。",
        "none_selected": "请选择", "follow_up_of": "来自保养单", "rating_word": "满意度",
        "sign_off_awaiting_record": "设备已恢复，工程师的服务记录填写后才能验收。",
        "agree_deadline": "与甲方商定修复期限", "submit_deadline": "确认期限",
        "done_resolve_due": "修复期限已商定。",
        "reclassify": "调整故障级别", "new_severity": "新级别",
        "reclassify_intro": "现为「{severity}」。诊断后调整级别，响应和修复期限按新级别重算"
                            "（重大故障的修复期限与甲方商定）；原级别和原期限保留在处理记录和服务水平报告中。",
        "reclassify_reason": "诊断结果（调整原因）", "submit_reclassify": "调整级别",
        "done_reclassify": "故障级别已调整。", "was_severity": "（原{severity}）",
        "rma": "厂商保修索赔", "rma_claims": "厂商保修索赔",
        "rma_intro": "新索赔请填写索赔单号、部件和厂商联系人；"
                     "填写已有的索赔单号可补登寄出、返回日期。",
        "claim_number": "索赔单号", "claimed_part": "索赔部件", "vendor_contact": "厂商联系人",
        "sent_on": "寄出日期", "returned_on": "返回日期", "not_returned": "未返回",
        "submit_rma": "登记索赔", "done_rma": "厂商保修索赔已登记。",
        "rma_returned_before_sent": "返回日期 {returned} 早于寄出日期 {sent}。",
    },
    "en": {
        "overview": "Overview", "silences": "Silences", "sites": "Sites", "site": "Site",
        "devices": "Devices", "device": "Device", "device_number": "Device ID",
        "tickets": "Tickets", "ticket": "Ticket",
        "open_tickets": "Open tickets", "breached": "breached",
        "attention": "Devices needing attention", "no_attention": "Every device is up.",
        "no_tickets": "No open tickets.", "since": "since",
        "cause": "cause", "location": "Location", "depends_on": "Depends on",
        "dependents": "Feeds", "kind": "Kind", "system": "System", "host": "Host",
        "name": "Name", "vendor": "Vendor", "model": "Model", "firmware": "Firmware",
        "serial": "Serial", "reported": "reported", "configured": "archive",
        "installed": "Installed", "warranty": "Warranty",
        "warranty_until": "until {date}, {days} days left",
        "warranty_expired": "expired {date}: replaced parts are charged at cost",
        "warranty_unknown": "no warranty on record", "tags": "Tags",
        "archive": "Equipment archive", "checks": "Checks", "check": "Check",
        "status": "Status", "last_seen": "Last run", "latency": "Latency",
        "error": "Error", "values": "Values", "history": "State history",
        "no_history": "No state changes recorded.", "from_to": "Change", "at": "Time",
        "contacts": "Contacts", "address": "Address", "contract": "Contract",
        "contract_from": "{months} months from {start}", "respond_by": "Respond by",
        "resolve_by": "Resolve by", "due_by": "Due by", "to_agree": "to agree with the site",
        "left": "{span} left", "overdue": "overdue by {span}", "met": "met {when}",
        "severity": "Severity", "timeline": "Timeline", "actor": "By", "note": "Note",
        "affected": "Affected devices", "service_records": "Service records",
        "engineer": "Engineer", "work_done": "Work done", "parts": "Parts",
        "sign_offs": "Sign-offs",
        "feedback": "Return-visit feedback", "rating": "Rating", "checklist": "Checklist",
        "ok": "ok", "not_ok": "not ok", "sign_off": "Sign off",
        "sign_off_intro": "Please confirm the fault is fixed and the equipment works, "
                          "then sign off.",
        "sign_off_late_intro": "The system closed this ticket when no sign-off came in time. "
                               "You can still sign off: your signature goes into the "
                               "timeline and the service receipt; the ticket is not "
                               "reopened.",
        "your_name": "Your name", "comment": "Comment (optional)",
        "submit_sign_off": "Sign off", "signed": "Accepted by the client, thank you.",
        "sign_off_not_now": "This ticket is {state}; it can be signed off once resolved.",
        "sign_off_failing": "The device is still failing; it can be signed off once "
                            "it is healthy again.",
        "sign_off_done": "The client has accepted this ticket.",
        "name_required": "Please give your name.",
        "sign_off_refused": "Not signed off: the ticket changed meanwhile, see below.",
        "sign_off_hint": "Site sign-off: make a link with "
                         "elvwatch tickets signoff-link {number}.",
        "recurrences": "Recurrences", "recovered": "recovered without intervention",
        "fault_active": "fault active", "fault_cleared": "fault cleared",
        "period": "Period", "who": "By", "why": "Why", "matchers": "Matches",
        "starts": "Starts", "until": "Until", "active": "active", "pending": "pending",
        "expired": "ended", "no_silences": "No silences now.",
        "show_expired": "Show ended silences", "hide_expired": "Current silences only",
        "updated": "updated", "not_found": "Not found",
        "unavailable": "Temporarily unavailable", "all_devices": "All devices",
        "none": "none", "opened": "Opened", "minutes": "{n} min", "hours": "{n} h",
        "days": "{n} d", "ago": "{span} ago", "just_now": "just now", "language": "中文",
        "behind": "behind {device}", "summary": "Summary",
        "reports": "Reports", "this_month": "This month", "contract_period": "Contract period",
        "report_availability": "Equipment operation record", "report_sla": "SLA report",
        "report_service": "Service records and feedback",
        "previsit_brief": "Pre-visit brief", "back_to_site": "Back to the site's page",
        "link_needed": "Link needed", "link_needed_text":
        "These pages open on the server itself or through a read link. Ask the engineer "
        "on duty for one (elvwatch link) and open it on your phone.",
        "link_expired": "Link expired", "link_expired_text":
        "This read link has expired. Ask the engineer on duty for a new one: "
        "elvwatch link --site SITE.",
        "link_invalid": "Invalid link", "link_invalid_text":
        "This read link is not valid (it was altered, or the daemon's token has been "
        "rotated). Ask the engineer on duty for a new one: elvwatch link --site SITE.",
        "link_other_site": "Not in this link", "link_other_site_text":
        "This link opens the pages of {name} only.",
        "link_revoked": "Link revoked",
        "engineer_link_invalid_text": "This engineer's link is not valid (it was altered, or "
        "the daemon's token has been rotated). Ask for a new one: elvwatch link --engineer ID.",
        "engineer_link_expired_text": "This engineer's link has expired. Ask for a new one: "
        "elvwatch link --engineer ID.",
        "engineer_link_revoked_text": "This engineer's link was revoked, or the engineer is "
        "no longer listed.",
        "engineer_other_site": "Not your site", "engineer_other_site_text":
        "Your link works on the tickets of these sites only: {sites}.",
        "form_expired": "Form expired", "form_expired_text":
        "This form was not opened through your current link. Go back to the ticket and "
        "send it again.",
        "signed_in_as": "Engineer: {name}", "field_work": "Field work",
        "dispatch": "Dispatch", "solution": "Solution", "assignee": "Engineer sent",
        "eta": "Expected on site", "submit_dispatch": "Dispatch", "arrive": "Arrived on site",
        "depart": "Leaving the site", "on_site_since": "You are on site since {when}",
        "visits": "Visits", "arrived": "Arrived", "departed": "Left",
        "still_on_site": "still on site", "service_record": "Service record",
        "fault_cause": "Cause", "part": "Part", "quantity": "Qty", "unit_price": "Unit price (CNY)",
        "consumable": "consumable", "submit_record": "Save the service record",
        "complete_checklist": "Checklist", "result": "Result", "item_device": "Device",
        "submit_checklist": "Save the checklist", "photos": "Photos", "photo": "Photo",
        "caption": "Caption (optional)", "upload_photo": "Upload the photo",
        "paper_receipt": "Record a signed paper receipt", "receipt_number": "Receipt number",
        "signer": "Signed by", "submit_paper": "Record the acceptance",
        "return_visit": "Return visit", "contact": "Visited",
        "quality_issue": "Workmanship problem?", "yes": "yes", "no": "no",
        "not_assessed": "not assessed", "outcome": "Outcome",
        "submit_return_visit": "Record the return visit",
        "signoff_link": "Make the client's sign-off link",
        "signoff_link_ready": "Send this link to the site representative (valid {hours} h):",
        "new_ticket": "Record a request (phone, WeChat, walk-in)", "reporter": "Reported by",
        "reporter_contact": "Phone", "channel": "Channel", "description": "Request",
        "where": "Device or place", "no_device": "(no device)",
        "submit_new_ticket": "Record the request", "periodic_visit": "Periodic return visit",
        "handover": "Handover package (zip)",
        "done_dispatch": "Dispatched.", "done_arrive": "Arrival recorded.",
        "done_depart": "Departure recorded.", "done_record": "Service record saved.",
        "done_complete": "Checklist saved.", "done_photo": "Photo uploaded.",
        "done_paper_receipt": "Paper receipt recorded: accepted by the client.",
        "done_return_visit": "Return visit recorded.",
        "done_new_ticket": "Request recorded: {number}",
        "action_refused": "Not done: the ticket changed meanwhile (now {state}).",
        "bad_input": "Please check the form: {detail}", "field_required": "Please fill in: {field}",
        "photo_too_big": "The photo is too big (at most {mb} MB).",
        "photo_not_image": "Only JPEG or PNG photos can be uploaded.",
        "none_selected": "choose", "follow_up_of": "From work order", "rating_word": "Rating",
        "sign_off_awaiting_record": "The device has recovered; it can be signed off once "
                                    "the engineer's service record is written.",
        "agree_deadline": "Repair deadline agreed with the site",
        "submit_deadline": "Set the deadline", "done_resolve_due": "Repair deadline set.",
        "reclassify": "Change the severity", "new_severity": "New severity",
        "reclassify_intro": "Now {severity}. After diagnosis the response and repair "
                            "deadlines follow the new severity (a major fault's repair "
                            "deadline is agreed with the site); the old severity and "
                            "deadlines stay in the timeline and the SLA report.",
        "reclassify_reason": "Diagnosis (why)", "submit_reclassify": "Change the severity",
        "done_reclassify": "Severity changed.", "was_severity": "(was {severity})",
        "rma": "Warranty claim", "rma_claims": "Warranty claims",
        "rma_intro": "A new claim needs its number, the part and the vendor's contact; "
                     "an existing claim number adds the dates it was sent and came back.",
        "claim_number": "Claim number", "claimed_part": "Part claimed",
        "vendor_contact": "Vendor contact", "sent_on": "Sent", "returned_on": "Returned",
        "not_returned": "not back yet", "submit_rma": "Record the claim",
        "done_rma": "Warranty claim recorded.",
        "rma_returned_before_sent": "Returned {returned} is before sent {sent}.",
    },
}


# Ticket states, severities, events, systems, device states and warranty coverage are
# the glossary's words (tickets/glossary.py), the same the reports and messages use.
for _lang, _index in (("zh-CN", 0), ("en", 1)):
    for _group, _prefix in (("state", "ts_"), ("severity", "sev_"), ("event", "ek_"),
                            ("system", "sys_"), ("device_state", "state_"),
                            ("coverage", "cov_")):
        for _key, _words in GLOSSARY[_group].items():
            MESSAGES[_lang][_prefix + _key] = _words[_index]


def text(language: str, key: str, **values: object) -> str:
    """The message ``key`` in ``language``; an unknown key shows itself (never fails)."""
    message = MESSAGES.get(language, MESSAGES["en"]).get(key) or MESSAGES["en"].get(key, key)
    return message.format(**values) if values else message


def accepted(header: str) -> dict[str, float]:
    """Accept-Language as primary language → best q (``zh-CN;q=0.8`` → ``zh``)."""
    out: dict[str, float] = {}
    for item in header.split(",")[:32]:
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if not primary:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        out[primary] = max(out.get(primary, 0.0), q)
    return out


def choose(site_language: str, accept_language: str | None, explicit: str | None) -> str:
    if explicit in LANGUAGES:
        return explicit
    default = site_language if site_language in LANGUAGES else "zh-CN"
    if not accept_language:
        return default
    prefs = accepted(accept_language)
    if "*" in prefs:
        return default
    other = "en" if default == "zh-CN" else "zh-CN"
    if prefs.get(default[:2], 0.0) == 0.0 and prefs.get(other[:2], 0.0) > 0.0:
        return other
    return default
