"""One word per concept of the maintenance contract, in Chinese and English.

The pages, the reports, the notifications and the command line all name ticket
states, severities, events, systems, device kinds and warranty coverage through this
table, so the site representative reads the same word for the same thing on a phone,
in a WeChat message and on the printed form.  Ids (``acknowledged``, ``cctv``,
``at_cost``) stay in the store, the API and the JSON documents; people read words.

The plan's own terms are kept: 定期保养 (preventive maintenance, never 巡检 or 预防性维护),
服务记录, 服务回执单, 用户回访反馈信息表, 设备档案.  The system's check of a recovery
(系统确认恢复) and the client's acceptance (用户已验收) are never worded alike.
"""

from __future__ import annotations

LANGUAGES = ("zh-CN", "en")

# group -> id -> (zh, en)
GLOSSARY: dict[str, dict[str, tuple[str, str]]] = {
    "state": {
        "open": ("待响应", "open"),
        "acknowledged": ("已派工", "dispatched"),
        "resolved": ("已修复", "resolved"),
        "verified": ("系统确认恢复", "recovery confirmed by monitoring"),
        "closed": ("已关闭", "closed"),
    },
    # A preventive work order is completed, not repaired.
    "preventive_state": {
        "open": ("待保养", "due"),
        "acknowledged": ("保养中", "in progress"),
        "resolved": ("已完成", "completed"),
        "verified": ("已完成", "completed"),
        "closed": ("已关闭", "closed"),
    },
    "severity": {
        "general": ("一般", "general"),
        "major": ("重大", "major"),
        "emergency": ("紧急", "emergency"),
    },
    "event": {
        "opened": ("开单", "opened"),
        "acknowledged": ("派工", "dispatched"),
        "escalated": ("升级通知", "escalated"),
        "breached": ("超时", "deadline passed"),
        "resolved": ("修复", "resolved"),
        "verified": ("系统确认恢复", "recovery confirmed by monitoring"),
        "closed": ("关闭", "closed"),
        "reopened": ("重新打开", "reopened"),
        "preventive_due": ("定期保养到期", "preventive maintenance due"),
        "deadline_set": ("商定修复期限", "repair deadline agreed"),
        "feedback": ("回访", "return visit"),
        "signed_off": ("用户已验收", "accepted by the client"),
        "reclassified": ("级别调整", "severity reclassified"),
        "rma": ("厂商保修索赔", "warranty claim"),
        "device_replaced": ("设备已更换", "device replaced"),
        "arrived": ("到场", "arrived on site"),
        "departed": ("离场", "left the site"),
        "photo": ("上传照片", "photo added"),
        "follow_up": ("开后续工单", "follow-up opened"),
    },
    "system": {
        "cctv": ("视频监控", "CCTV"),
        "access_control": ("门禁", "access control"),
        "intercom": ("楼宇对讲", "intercom"),
        "alarm": ("防盗报警", "alarm"),
        "network": ("网络", "network"),
        "power": ("供电", "power"),
    },
    "ticket_kind": {
        "fault": ("故障", "fault"),
        "preventive": ("定期保养", "preventive maintenance"),
    },
    "coverage": {
        "warranty": ("保修索赔", "warranty claim"),
        "at_cost": ("按成本收费", "at cost"),
        "unknown": ("保修未知", "warranty unknown"),
    },
    "device_state": {
        "up": ("正常", "up"),
        "degraded": ("部分故障", "degraded"),
        "down": ("故障", "down"),
        "unknown": ("未知", "unknown"),
    },
    "device_kind": {
        "camera": ("摄像机", "camera"),
        "ipc": ("网络摄像机", "IP camera"),
        "nvr": ("硬盘录像机", "NVR"),
        "switch": ("交换机", "switch"),
        "poe_switch": ("PoE 交换机", "PoE switch"),
        "router": ("路由器", "router"),
        "access_panel": ("门禁控制器", "access controller"),
        "door_controller": ("门禁控制器", "door controller"),
        "door_station": ("门口机", "door station"),
        "intercom_server": ("对讲服务器", "intercom server"),
        "alarm_panel": ("报警主机", "alarm panel"),
        "ups": ("不间断电源", "UPS"),
        "pdu": ("电源分配单元", "PDU"),
    },
    # How a ticket came in (tickets/records.py CHANNELS).
    "channel": {
        "monitoring": ("系统监测", "monitoring"),
        "schedule": ("定期保养", "preventive maintenance"),
        "phone": ("电话", "phone"),
        "wechat": ("微信", "WeChat"),
        "walk_in": ("上门", "walk-in"),
        "email": ("邮件", "email"),
        "other": ("其他", "other"),
    },
    "actor": {
        "system": ("系统", "system"),
    },
    "words": {
        "preventive": ("定期保养", "preventive maintenance"),
        "checklist": ("保养项目", "checklist"),
        "signed_off": ("用户已验收", "accepted by the client"),
        "recovered": ("设备自行恢复（无人处理）", "recovered without intervention"),
        "consumable": ("耗材", "consumable"),
    },
}


def term(group: str, key: str | None, language: str) -> str:
    """The word for ``key`` of ``group``; an id the table does not know shows itself
    (a custom device kind), never an error."""
    if key is None:
        return ""
    pair = GLOSSARY.get(group, {}).get(key)
    if pair is None:
        return key
    return pair[0] if language == "zh-CN" else pair[1]


def state_term(state: str, kind: str, language: str) -> str:
    return term("preventive_state" if kind == "preventive" else "state", state, language)
