"""Dashboards about infrastructure, tickets and elvwatch itself."""

from __future__ import annotations

from fleet import RED_FROM_1, SITES, site_variable
from panels import UP_DOWN, Dashboard, Json, now, q, table_q, variable

RATE = "[$__rate_interval]"


def _up_of(kinds: str) -> str:
    return f'sum(elvwatch_device_up{{{SITES},kind=~"{kinds}"}})'


def infrastructure() -> Json:
    d = Dashboard("elvwatch-infra", "elvwatch / Infrastructure",
                  "Switches and PoE, UPSes, NVR disks, alarm and IoT gateways. "
                  "基础设施：交换机与 PoE、UPS、NVR 硬盘、报警与物联网网关。", [site_variable()])
    d.table("Infrastructure up by kind", "Per community and kind: devices up and total. "
            "各小区各类基础设施设备的在线数与总数。", [
                table_q(f'sum by (site, kind) (elvwatch_device_up{{{SITES},'
                        f'kind=~"switch|router|ups|nvr|alarm_panel"}})'),
                table_q(f'count by (site, kind) (elvwatch_device_state{{{SITES},'
                        f'kind=~"switch|router|ups|nvr|alarm_panel",state="up"}})')],
            rename={"Value #A": "up", "Value #B": "total"}, width=24, height=7)
    d.row("Switches and PoE")
    d.stat("Switches up", "Switches and routers answering. 在线交换机与路由器数。",
           [now(_up_of("switch|router"))], thresholds=[(None, "green")])
    d.table("Ports down (admin up)", "Ports enabled but without link, per switch. "
            "已启用但无链路的端口数。",
            [table_q(f"sum by (site, device) (elvwatch_snmp_if_admin_up{{{SITES}}} * "
                     f"(1 - elvwatch_snmp_if_oper_up{{{SITES}}}))")],
            rename={"Value": "ports down"}, width=8)
    d.table("PoE ports", "Ports delivering power and ports with a PoE fault. "
            "正在供电的端口数与 PoE 故障端口数。", [
                table_q(f"sum by (site, device) (elvwatch_snmp_poe_delivering{{{SITES}}})"),
                table_q(f"sum by (site, device) (elvwatch_snmp_poe_fault{{{SITES}}})")],
            rename={"Value #A": "delivering", "Value #B": "faulty"}, width=12)
    d.bars("PoE budget used", "Power drawn over the PSE's budget, per switch. "
           "各交换机 PoE 功率预算使用率。",
           [now(f"sum by (site, device) (elvwatch_snmp_poe_pse_consumption_watts{{{SITES}}})"
                f" / sum by (site, device) (elvwatch_snmp_poe_pse_power_watts{{{SITES}}})",
                "{{site}} {{device}}")],
           unit="percentunit", min_value=0, max_value=1,
           thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")])
    d.graph("Port errors (top 10)", "Interface errors per second, in plus out. "
            "端口错误包速率（收+发）。",
            [q(f"topk(10, sum by (site, device, port) ("
               f"rate(elvwatch_snmp_if_in_errors{{{SITES}}}{RATE}) + "
               f"rate(elvwatch_snmp_if_out_errors{{{SITES}}}{RATE})))",
               "{{device}} {{port}}")], unit="pps")
    d.graph("Port traffic (top 10)", "Interface traffic, in plus out. 端口流量（收+发）。",
            [q(f"topk(10, 8 * sum by (site, device, port) ("
               f"rate(elvwatch_snmp_if_in_octets{{{SITES}}}{RATE}) + "
               f"rate(elvwatch_snmp_if_out_octets{{{SITES}}}{RATE})))",
               "{{device}} {{port}}")], unit="bps")
    d.row("UPS")
    d.stat("UPSes up", "UPSes answering. 在线 UPS 数。", [now(_up_of("ups"))])
    d.stat("UPSes on battery", "UPSes running on battery (mains lost). "
           "正在使用电池供电的 UPS 数（市电中断）。",
           [now(f"sum(elvwatch_snmp_ups_on_battery{{{SITES}}})")], thresholds=RED_FROM_1,
           no_value="0")
    d.table("UPS status", "Per UPS: on battery, battery low, charge, runtime left. "
            "每台 UPS：是否电池供电、电池低、电量、剩余时间。", [
                table_q(f"max by (site, device) (elvwatch_snmp_ups_on_battery{{{SITES}}})"),
                table_q(f"max by (site, device) (elvwatch_snmp_ups_battery_low{{{SITES}}})"),
                table_q(f"min by (site, device) "
                        f"(elvwatch_snmp_ups_battery_charge_ratio{{{SITES}}})"),
                table_q(f"min by (site, device) "
                        f"(elvwatch_snmp_ups_battery_runtime_seconds{{{SITES}}})")],
            rename={"Value #A": "on battery", "Value #B": "battery low",
                    "Value #C": "charge", "Value #D": "runtime (s)"}, width=16)
    d.bars("UPS battery charge", "Battery charge per UPS. 各 UPS 电池电量。",
           [now(f"min by (site, device) (elvwatch_snmp_ups_battery_charge_ratio{{{SITES}}})",
                "{{site}} {{device}}")], unit="percentunit", min_value=0, max_value=1,
           thresholds=[(None, "red"), (0.5, "orange"), (0.8, "green")])
    d.graph("UPS output load", "Output load per UPS. 各 UPS 输出负载率。",
            [q(f"max by (site, device) (elvwatch_snmp_ups_output_load_ratio{{{SITES}}})",
               "{{site}} {{device}}")], unit="percentunit", min_value=0)
    d.row("NVR disks")
    d.stat("NVRs up", "Recorders answering. 在线录像机数。", [now(_up_of("nvr"))])
    d.table("NVR disks", "Per recorder: failed, warning and missing disks. "
            "每台录像机：故障、告警与缺失的硬盘数。", [
                table_q(f"sum by (site, device) (elvwatch_snmp_disk_failed{{{SITES}}})"),
                table_q(f"sum by (site, device) (elvwatch_snmp_disk_warning{{{SITES}}})"),
                table_q(f"sum by (site, device) (1 - elvwatch_snmp_disk_present{{{SITES}}})")],
            rename={"Value #A": "failed", "Value #B": "warning", "Value #C": "missing"},
            width=10)
    d.bars("NVR storage used", "Used share of each storage area. 各存储区使用率。",
           [now(f"max by (site, device, name) (elvwatch_snmp_storage_used_bytes{{{SITES}}}"
                f" / elvwatch_snmp_storage_size_bytes{{{SITES}}})",
                "{{device}} {{name}}")], unit="percentunit", min_value=0, max_value=1,
           thresholds=[(None, "green"), (0.9, "orange"), (0.97, "red")], width=10)
    d.table("Uptime and reboots", "Device uptime (SNMP) and whether it rebooted since the "
            "last poll. 设备运行时间（SNMP）及是否刚重启。", [
                table_q(f"min by (site, device, kind) (elvwatch_snmp_uptime_seconds{{{SITES}}})"),
                table_q(f"max by (site, device, kind) (elvwatch_snmp_rebooted{{{SITES}}})")],
            rename={"Value #A": "uptime (s)", "Value #B": "rebooted"}, width=24)
    d.row("Alarm and IoT (MQTT)")
    d.stat("Alarm panels up", "Alarm controllers answering. 在线报警主机数。",
           [now(_up_of("alarm_panel"))])
    d.table("MQTT devices offline", "Devices whose MQTT availability says offline. "
            "MQTT 可用性显示离线的设备。",
            [table_q(f"sum by (site, device) (1 - elvwatch_mqtt_online{{{SITES}}})")],
            rename={"Value": "offline"}, width=8)
    d.graph("MQTT data age", "Seconds since each device last published. 设备最近一次上报距今秒数。",
            [q(f"max by (site, device) (elvwatch_mqtt_age_seconds{{{SITES}}})",
               "{{site}} {{device}}")], unit="s")
    return d.build()


def tickets_sla() -> Json:
    deadline = f"elvwatch_ticket_deadline_seconds{{{SITES}}}"
    d = Dashboard("elvwatch-tickets", "elvwatch / Tickets & SLA",
                  "Open tickets by severity, deadlines and SLA breaches. "
                  "工单与服务等级：按严重程度的未结工单、时限与超时。", [site_variable()])
    d.stat("Open tickets", "Tickets not yet resolved. 未解决的工单数。",
           [now(f"sum(elvwatch_tickets_open{{{SITES}}})")],
           thresholds=[(None, "green"), (1, "orange")], no_value="0")
    d.stat("Open by severity", "Open tickets per severity. 各严重程度的未结工单数。",
           [now(f"sum by (severity) (elvwatch_tickets_open{{{SITES}}})", "{{severity}}")],
           width=8, thresholds=[(None, "blue")])
    d.stat("Due within 1 h", "Deadlines (response or resolve) less than an hour away. "
           "一小时内到期的时限（响应或处理）。",
           [now(f"sum(({deadline} < bool 3600) * ({deadline} >= bool 0))")],
           thresholds=[(None, "green"), (1, "orange")], no_value="0")
    d.stat("Breached now", "Deadlines already passed on open tickets. 未结工单中已超时的时限。",
           [now(f"sum({deadline} < bool 0)")], thresholds=RED_FROM_1, no_value="0")
    d.stat("Breaches in range", "SLA breaches in the dashboard's time range. "
           "所选时间范围内的超时次数。",
           [now(f"sum(increase(elvwatch_ticket_breaches_total{{{SITES}}}[$__range]))")],
           thresholds=RED_FROM_1, no_value="0")
    d.table("Deadlines, soonest first", "Seconds left per ticket deadline; negative is "
            "breached. 各工单时限的剩余秒数，负数表示已超时。",
            [table_q(f"bottomk(25, {deadline})")], rename={"Value": "seconds left"},
            unit="s", thresholds=[(None, "red"), (0, "orange"), (3600, "green")],
            custom={"cellOptions": {"type": "color-text"}}, height=10)
    d.table("Open tickets by site", "Open tickets per community and severity. "
            "各小区各严重程度的未结工单。",
            [table_q(f"sum by (site, severity) (elvwatch_tickets_open{{{SITES}}})")],
            rename={"Value": "open"}, height=10)
    d.bars("Open tickets by state", "Where open tickets are in their workflow. "
           "未结工单所处的流程状态。",
           [now(f"sum by (state) (elvwatch_tickets_open{{{SITES}}})", "{{state}}")])
    d.bars("Open tickets by system", "Open tickets per subsystem. 各子系统的未结工单。",
           [now(f"sum by (system) (elvwatch_tickets_open{{{SITES}}})", "{{system}}")])
    d.graph("Open tickets over time", "Open tickets by severity. 按严重程度的未结工单趋势。",
            [q(f"sum by (severity) (elvwatch_tickets_open{{{SITES}}})", "{{severity}}")])
    d.graph("SLA breaches per hour", "Breaches in the preceding hour, by severity and "
            "deadline. 前一小时的超时次数，按严重程度与时限类型。",
            [q(f"sum by (severity, deadline) "
               f"(increase(elvwatch_ticket_breaches_total{{{SITES}}}[1h]))",
               "{{severity}} {{deadline}}")])
    d.graph("Opened and verified per day", "Tickets opened and tickets verified closed in "
            "the preceding day. 前一天新建与验证关闭的工单数。", [
                q(f"sum by (severity) (increase(elvwatch_tickets_opened_total{{{SITES}}}[1d]))",
                  "opened {{severity}}"),
                q(f"sum by (severity) "
                  f"(increase(elvwatch_tickets_verified_total{{{SITES}}}[1d]))",
                  "verified {{severity}}")], width=24)
    return d.build()


def self_health() -> Json:
    inst = 'instance=~"$instance"'
    lag = f"elvwatch_scheduler_lag_seconds_bucket{{{inst}}}"
    instance = variable("instance", "Instance",
                        "label_values(elvwatch_scheduler_checks, instance)", multi=True,
                        description="elvwatch daemon (scrape target). "
                        "elvwatch 守护进程（抓取目标）。")
    d = Dashboard("elvwatch-self", "elvwatch / Self-health",
                  "Is elvwatch itself healthy: scrape, scheduler, store, reloads, process. "
                  "elvwatch 自身健康：抓取、调度、存储、配置重载、进程资源。", [instance])
    d.stat("Scrape up", "Prometheus reaches elvwatch's /metrics. Prometheus 能否抓取 elvwatch。",
           [now(f'min(up{{{inst},job="elvwatch"}})')], mappings=UP_DOWN,
           thresholds=[(None, "red"), (1, "green")])
    d.stat("Config reload OK", "The last config (re)load succeeded. 最近一次配置加载是否成功。",
           [now(f"min(elvwatch_config_last_reload_successful{{{inst}}})")],
           mappings=[{"type": "value", "options": {
               "0": {"text": "failed", "color": "red", "index": 0},
               "1": {"text": "ok", "color": "green", "index": 1}}}],
           thresholds=[(None, "red"), (1, "green")])
    d.stat("Checks scheduled", "Checks in the schedule. 调度中的检测项数。",
           [now(f"sum(elvwatch_scheduler_checks{{{inst}}})")], thresholds=[(None, "blue")])
    d.stat("Checks/s", "Checks run per second. 每秒运行的检测数。",
           [now(f"sum(rate(elvwatch_scheduler_checks_run_total{{{inst}}}{RATE}))")],
           thresholds=[(None, "blue")], unit="ops")
    d.stat("Scheduler lag p99", "99th percentile of how late checks start. "
           "检测启动延迟的 99 分位。",
           [now(f"histogram_quantile(0.99, sum by (le) (rate({lag}{RATE})))")], unit="s",
           thresholds=[(None, "green"), (1, "orange"), (5, "red")])
    d.stat("Store pending writes", "State changes waiting for the store. 待写入存储的状态变化。",
           [now(f"sum(elvwatch_store_pending_writes{{{inst}}})")],
           thresholds=[(None, "green"), (100, "orange"), (1000, "red")])
    d.graph("Checks per second by result", "Checks run per second, by result. "
            "按结果统计的每秒检测数。",
            [q(f"sum by (instance, status) "
               f"(rate(elvwatch_scheduler_checks_run_total{{{inst}}}{RATE}))", "{{status}}")],
            unit="ops")
    d.graph("Scheduler lag", "How late checks start after they are due (p50, p99). "
            "检测启动延迟（50 与 99 分位）。", [
                q(f"histogram_quantile(0.5, sum by (instance, le) (rate({lag}{RATE})))",
                  "p50 {{instance}}"),
                q(f"histogram_quantile(0.99, sum by (instance, le) (rate({lag}{RATE})))",
                  "p99 {{instance}}")], unit="s")
    d.graph("Errors per second", "Failed checks, overruns (a check still running when "
            "due again) and store write errors. 失败检测、超时重叠与存储写入错误速率。", [
                q(f"sum by (instance) (rate(elvwatch_scheduler_checks_run_total"
                  f'{{{inst},status=~"down|unknown"}}{RATE}))', "failed checks"),
                q(f"sum by (instance) (rate(elvwatch_scheduler_overruns_total{{{inst}}}{RATE}))",
                  "overruns"),
                q(f"sum by (instance) (rate(elvwatch_store_errors_total{{{inst}}}{RATE}))",
                  "store errors")], unit="ops")
    d.graph("Checks in flight", "Checks running at this moment. 正在运行的检测数。",
            [q(f"elvwatch_scheduler_checks_in_flight{{{inst}}}", "{{instance}}")])
    d.graph("Store pending writes", "Backlog of state changes to write. 待写入的状态变化积压。",
            [q(f"elvwatch_store_pending_writes{{{inst}}}", "{{instance}}")])
    d.graph("Resident memory", "Memory the daemon holds. 守护进程常驻内存。",
            [q(f"process_resident_memory_bytes{{{inst}}}", "{{instance}}")], unit="bytes")
    d.graph("CPU", "CPU used (1 = one core). CPU 使用（1 表示一个核）。",
            [q(f"rate(process_cpu_seconds_total{{{inst}}}{RATE})", "{{instance}}")],
            unit="percentunit")
    d.graph("Open file descriptors", "Sockets and files open, against the limit. "
            "打开的文件描述符及上限。", [
                q(f"process_open_fds{{{inst}}}", "open {{instance}}"),
                q(f"process_max_fds{{{inst}}}", "limit {{instance}}")])
    d.graph("Scrape duration", "How long Prometheus takes to scrape /metrics. "
            "Prometheus 抓取 /metrics 的耗时。",
            [q(f"scrape_duration_seconds{{{inst}}}", "{{instance}}")], unit="s")
    d.stat("Since last good reload", "Time since the config last loaded successfully. "
           "距最近一次成功加载配置的时间。",
           [now(f"time() - max(elvwatch_config_last_reload_success_timestamp_seconds"
                f"{{{inst}}})")], unit="s", thresholds=[(None, "blue")], width=6)
    d.stat("Series scraped", "Samples in the last scrape of /metrics. 最近一次抓取的样本数。",
           [now(f"sum(scrape_samples_scraped{{{inst}}})")], thresholds=[(None, "blue")],
           width=6)
    return d.build()
