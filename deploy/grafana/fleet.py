"""Dashboards about devices: fleet overview, site drill-down, camera health."""

from __future__ import annotations

from panels import UP_DOWN, Dashboard, Json, now, q, table_q, variable

SITES = 'site=~"$site"'
RED_FROM_1 = [(None, "green"), (1, "red")]
AVAILABILITY = [(None, "red"), (0.9, "orange"), (0.98, "green")]


def site_variable(*, multi: bool = True) -> Json:
    return variable("site", "Site", "label_values(elvwatch_device_info, site)", multi=multi,
                    description="Community (site id from the config). 小区（配置中的站点编号）。")


def _down_for(selector: str) -> str:
    """Seconds each down device has been down, by device."""
    return (f"time() - max by (site, system, kind, device) "
            f"(elvwatch_device_state_change_timestamp_seconds{{{selector}}} "
            f"and on (site, device) (elvwatch_device_state{{{selector},state=\"down\"}} == 1))")


def fleet_overview() -> Json:
    d = Dashboard("elvwatch-fleet", "elvwatch / Fleet overview",
                  "Every community at a glance: devices up, down and faults now. "
                  "全部小区概览：设备在线、离线与当前故障。", [site_variable()])
    d.row("Now")
    d.stat("Devices up", "Devices answering (up or degraded). 在线设备数（正常或降级）。",
           [now(f"sum(elvwatch_device_up{{{SITES}}})")], thresholds=[(None, "green")])
    d.stat("Devices total", "Devices in the equipment archive. 设备档案中的设备总数。",
           [now(f'count(elvwatch_device_state{{{SITES},state="up"}})')],
           thresholds=[(None, "blue")])
    d.stat("Devices down", "Devices confirmed down. 已确认离线的设备数。",
           [now(f'sum(elvwatch_device_state{{{SITES},state="down"}})')],
           thresholds=RED_FROM_1)
    d.stat("Devices degraded", "Devices answering with a problem. 有异常但仍在线的设备数。",
           [now(f'sum(elvwatch_device_state{{{SITES},state="degraded"}})')],
           thresholds=[(None, "green"), (1, "orange")])
    d.stat("Devices unknown", "Devices not yet checked, or whose checks cannot run. "
           "尚未检测或无法检测的设备数。",
           [now(f'sum(elvwatch_device_state{{{SITES},state="unknown"}})')],
           thresholds=[(None, "green"), (1, "purple")])
    d.stat("Faults firing", "Faults the rule engine reports now. 规则引擎当前报告的故障数。",
           [now(f"sum(elvwatch_faults_firing{{{SITES}}})")], thresholds=RED_FROM_1,
           no_value="0")
    d.row("Sites")
    d.table("Sites", "Per community: devices up, total, down and faults now. "
            "各小区：在线、总数、离线设备与当前故障。", [
                table_q(f"sum by (site) (elvwatch_device_up{{{SITES}}})"),
                table_q(f'count by (site) (elvwatch_device_state{{{SITES},state="up"}})'),
                table_q(f'sum by (site) (elvwatch_device_state{{{SITES},state="down"}})'),
                table_q(f"sum by (site) (elvwatch_faults_firing{{{SITES}}})")],
            rename={"Value #A": "up", "Value #B": "total", "Value #C": "down",
                    "Value #D": "faults"})
    d.bars("Availability by site", "Share of devices up per community. 各小区设备在线率。",
           [now(f"sum by (site) (elvwatch_device_up{{{SITES}}}) / count by (site) "
                f'(elvwatch_device_state{{{SITES},state="up"}})', "{{site}}")],
           unit="percentunit", min_value=0, max_value=1, thresholds=AVAILABILITY)
    d.table("Devices up by system", "Per community and system (CCTV, access control, "
            "intercom, alarm, network, power). 各小区各子系统的设备在线情况。", [
                table_q(f"sum by (site, system) (elvwatch_device_up{{{SITES}}})"),
                table_q(f'count by (site, system) (elvwatch_device_state{{{SITES},'
                        f'state="up"}})'),
                table_q(f'sum by (site, system) (elvwatch_device_state{{{SITES},'
                        f'state="down"}})')],
            rename={"Value #A": "up", "Value #B": "total", "Value #C": "down"})
    d.table("Devices down now", "Each down device and how long it has been down. "
            "当前离线设备及离线时长。", [table_q(_down_for(SITES))],
            rename={"Value": "down for"}, unit="s")
    d.row("Over time")
    d.graph("Devices down by site", "Down devices per community over time. "
            "各小区离线设备数随时间变化。",
            [q(f'sum by (site) (elvwatch_device_state{{{SITES},state="down"}})', "{{site}}")])
    d.graph("Faults firing by severity", "Faults now, by severity. 按严重程度统计的当前故障。",
            [q(f"sum by (severity) (elvwatch_faults_firing{{{SITES}}})", "{{severity}}")])
    d.table("Faults now", "Each firing fault: device, rule, severity. "
            "每条正在触发的故障：设备、规则、严重程度。",
            [table_q(f"sum by (site, system, device, rule, severity) "
                     f"(elvwatch_faults_firing{{{SITES}}})")], width=24)
    return d.build()


def site_drilldown() -> Json:
    system = variable("system", "System",
                      'label_values(elvwatch_device_info{site="$site"}, system)', multi=True,
                      description="Subsystem of the site. 小区的子系统。")
    d = Dashboard("elvwatch-site", "elvwatch / Site drill-down",
                  "One community in depth: every device, its checks and faults. "
                  "单个小区详情：每台设备、其检测项与故障。", [site_variable(multi=False), system])
    sel = 'site="$site",system=~"$system"'
    d.stat("Devices", "Devices of the site. 本小区设备数。",
           [now(f'count(elvwatch_device_state{{{sel},state="up"}})')],
           thresholds=[(None, "blue")])
    d.stat("Up", "Devices answering. 在线设备数。", [now(f"sum(elvwatch_device_up{{{sel}}})")])
    d.stat("Down", "Devices confirmed down. 离线设备数。",
           [now(f'sum(elvwatch_device_state{{{sel},state="down"}})')], thresholds=RED_FROM_1)
    d.stat("Degraded", "Devices answering with a problem. 降级设备数。",
           [now(f'sum(elvwatch_device_state{{{sel},state="degraded"}})')],
           thresholds=[(None, "green"), (1, "orange")])
    d.stat("Faults firing", "Faults now. 当前故障数。",
           [now(f"sum(elvwatch_faults_firing{{{sel}}})")], thresholds=RED_FROM_1,
           no_value="0")
    d.stat("Open tickets", "Tickets not yet resolved. 未解决的工单数。",
           [now(f"sum(elvwatch_tickets_open{{{sel}}})")],
           thresholds=[(None, "green"), (1, "orange")], no_value="0")
    d.table("Devices", "State of every device and how long it has been in it. "
            "每台设备的状态及持续时间。", [
                table_q(f"max by (system, kind, device, state) "
                        f"(elvwatch_device_state{{{sel}}} == 1)"),
                table_q(f"max by (system, kind, device) (time() - "
                        f"elvwatch_device_state_change_timestamp_seconds{{{sel}}})")],
            rename={"Value #A": "in state", "Value #B": "for (s)"}, width=12, height=10)
    d.table("Equipment", "Archive data and what the device reported (vendor, model, "
            "firmware). 设备档案及设备自报信息（厂商、型号、固件）。",
            [table_q(f"elvwatch_device_info{{{sel}}}")], width=12, height=10)
    d.timeline("Device up/down", "Reachability of each device over time. "
               "每台设备的在线情况时间线。",
               [q(f"elvwatch_device_up{{{sel}}}", "{{device}}")], mappings=UP_DOWN,
               thresholds=[(None, "red"), (1, "green")], height=10)
    d.graph("Ping round-trip time", "ICMP echo round trip. ICMP 往返时延。",
            [q(f"elvwatch_icmp_rtt_seconds{{{sel}}}", "{{device}}")], unit="s")
    d.graph("Packet loss", "ICMP packet loss. ICMP 丢包率。",
            [q(f"elvwatch_icmp_packet_loss_ratio{{{sel}}}", "{{device}}")],
            unit="percentunit", min_value=0, max_value=1)
    d.graph("TCP connect time", "Time to open each checked TCP port. TCP 端口连接耗时。",
            [q(f"elvwatch_tcp_connect_seconds{{{sel}}}", "{{device}} {{check}}")], unit="s")
    d.graph("Check duration", "How long each check took. 各检测项耗时。",
            [q(f"max by (device, check) (elvwatch_check_duration_seconds{{{sel}}})",
               "{{device}} {{check}}")], unit="s")
    d.table("Failing checks", "Checks whose last run failed. 最近一次运行失败的检测项。",
            [table_q(f"elvwatch_check_up{{{sel}}} == 0")], rename={"Value": "up"})
    d.table("Faults firing", "Faults now on this site. 本小区当前故障。",
            [table_q(f"sum by (device, rule, severity) (elvwatch_faults_firing{{{sel}}})")])
    d.table("Open tickets", "Open tickets by system, severity and state. "
            "按子系统、严重程度和状态统计的未结工单。",
            [table_q(f"sum by (system, severity, state) (elvwatch_tickets_open{{{sel}}})")])
    return d.build()


def camera_health() -> Json:
    cams = f'{SITES},kind="camera"'
    video = f'{SITES},kind=~"camera|nvr"'
    d = Dashboard("elvwatch-cameras", "elvwatch / Camera health",
                  "CCTV: cameras and NVRs up, streams, snapshots, clocks and events. "
                  "视频监控：摄像机与 NVR 在线、码流、抓图、时钟与事件。", [site_variable()])
    d.stat("Cameras up", "Cameras answering. 在线摄像机数。",
           [now(f"sum(elvwatch_device_up{{{cams}}})")])
    d.stat("Cameras total", "Cameras in the archive. 档案中的摄像机数。",
           [now(f'count(elvwatch_device_state{{{cams},state="up"}})')],
           thresholds=[(None, "blue")])
    d.stat("Cameras down", "Cameras confirmed down. 离线摄像机数。",
           [now(f'sum(elvwatch_device_state{{{cams},state="down"}})')], thresholds=RED_FROM_1)
    d.stat("NVRs down", "Recorders confirmed down. 离线录像机数。",
           [now(f'sum(elvwatch_device_state{{{SITES},kind="nvr",state="down"}})')],
           thresholds=RED_FROM_1)
    d.stat("Streams down", "Cameras whose ONVIF profile offers no working video stream. "
           "ONVIF 无可用视频流的摄像机数。",
           [now(f"sum(1 - elvwatch_onvif_stream_up{{{SITES}}})")], thresholds=RED_FROM_1,
           no_value="0")
    d.stat("Snapshots failing", "Cameras whose snapshot is missing, black or uniform. "
           "抓图失败、黑屏或画面单一的摄像机数。",
           [now(f"sum(1 - elvwatch_onvif_snapshot_ok{{{SITES}}})")], thresholds=RED_FROM_1,
           no_value="0")
    d.table("Cameras and NVRs down", "Each down camera or recorder and for how long. "
            "离线的摄像机与录像机及离线时长。", [table_q(_down_for(video))],
            rename={"Value": "down for"}, unit="s")
    d.bars("Camera availability by site", "Share of cameras up per community. "
           "各小区摄像机在线率。",
           [now(f"sum by (site) (elvwatch_device_up{{{cams}}}) / count by (site) "
                f'(elvwatch_device_state{{{cams},state="up"}})', "{{site}}")],
           unit="percentunit", min_value=0, max_value=1, thresholds=AVAILABILITY)
    d.graph("Camera clock offset", "Camera clock minus elvwatch's clock (ONVIF). Wrong "
            "clocks break recordings' timestamps. 摄像机时钟偏差（ONVIF），影响录像时间戳。",
            [q(f"elvwatch_onvif_clock_offset_seconds{{{SITES}}}", "{{site}} {{device}}")],
            unit="s")
    d.table("Largest clock offsets", "Cameras furthest from the right time. "
            "时钟偏差最大的摄像机。",
            [table_q(f"topk(20, abs(elvwatch_onvif_clock_offset_seconds{{{SITES}}}))")],
            rename={"Value": "offset (s)"}, unit="s")
    d.table("Streams and snapshots", "Per camera: stream up and snapshot ok (1 = good). "
            "每台摄像机：码流与抓图是否正常（1 为正常）。", [
                table_q(f"max by (site, device) (elvwatch_onvif_stream_up{{{SITES}}})"),
                table_q(f"max by (site, device) (elvwatch_onvif_snapshot_ok{{{SITES}}})")],
            rename={"Value #A": "stream", "Value #B": "snapshot"})
    d.graph("RTSP DESCRIBE time", "How long the RTSP server took to describe the stream. "
            "RTSP DESCRIBE 响应耗时。",
            [q(f"elvwatch_rtsp_describe_seconds{{{SITES}}}", "{{site}} {{device}}")],
            unit="s")
    d.graph("Camera check latency", "Slowest check per camera/NVR. 摄像机与录像机的检测耗时。",
            [q(f"max by (site, device, check) (elvwatch_check_duration_seconds{{{video}}})",
               "{{device}} {{check}}")], unit="s")
    d.bars("Camera events and faults now", "Video loss, tamper and other camera faults "
           "firing now, by rule. 当前摄像机故障（视频丢失、遮挡等），按规则统计。",
           [now(f'sum by (rule) (elvwatch_faults_firing{{{SITES},system="cctv"}})',
                "{{rule}}")])
    return d.build()
