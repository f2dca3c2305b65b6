"""Simulated MQTT bridges publishing what the real ones publish, for tests and the demo.

* :class:`PaiBridge` — ParadoxAlarmInterface (PAI) in front of a Paradox panel of the
  EVO or the Spectra SP / Magellan MG family: on start it publishes, retained, its
  availability and every property PAI publishes from the panel's status (system
  troubles, battery voltage, each partition's and each zone's flags) with PAI's topic
  layout and payloads (``True``/``False``, or ``1``/``0`` as with PAI's
  MQTT_USE_NUMERIC_STATES); then each change.  The property names per family are the
  ones PAI's status parsers produce (written down here from reading PAI, not copied);
  event-only properties (a zone's ``fire_alarm``) are published only when set.
  Partitions carry PAI's ``current_state`` (``triggered`` while any alarm flag is on).
  Sub-devices are published like PAI's status parsers name them: EVO bus modules
  (``states/bus-module/<label>/…``: each module's troubles, ``assigned``, ``missing``);
  Spectra/Magellan bus modules, wireless repeaters, keypads and outputs
  (``bus-module``, ``repeaters``, ``keypads``, ``outputs``).
* :class:`FrigateStats` — Frigate: ``<prefix>/available`` and a ``<prefix>/stats``
  document every ``interval`` seconds, in the 0.13+ layout (``cameras.<name>``) or the
  older one (cameras at the top level); with ``health`` (Frigate 0.17+) also each
  camera's ``<prefix>/<camera>/status/detect|record`` every interval and its retained
  ``<prefix>/<camera>/enabled/state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from typing import Literal

from elvwatch.lab.mqtt import SimDevice

Family = Literal["evo", "sp"]

# System troubles PAI publishes under <base>/states/system/troubles/ (its RAM status).
TROUBLES: dict[Family, tuple[str, ...]] = {
    "evo": (
        "time_lost_trouble", "zone_fault_trouble", "zone_low_battery_trouble",
        "zone_tamper_trouble", "module_supervision_trouble", "module_trouble",
        "dialer_trouble", "system_trouble", "panel_tamper_trouble", "rom_error_trouble",
        "bell_absent_trouble", "bell_limit_trouble", "aux_limit_trouble",
        "battery_failure_trouble", "ac_trouble", "com_pc_trouble",
        "fail_central_4_trouble", "fail_central_3_trouble", "fail_central_2_trouble",
        "fail_central_1_trouble", "tlm_trouble", "module_aux_trouble",
        "module_battery_fail", "module_ac_trouble", "module_printer_trouble",
        "module_fail_to_com_trouble", "module_tlm_trouble", "module_rom_error_trouble",
        "module_tamper_trouble", "mdl_com_error", "bus_overload_trouble",
        "bus_global_fail", "safety_mismatch_trouble", "missing_module_trouble",
        "missing_keypad_trouble"),
    "sp": (
        "timer_loss_trouble", "fire_loop_trouble", "module_tamper_trouble",
        "zone_tamper_trouble", "communication_trouble", "bell_trouble", "power_trouble",
        "rf_low_battery_trouble", "rf_interference_trouble", "module_supervision_trouble",
        "zone_supervision_trouble", "wireless_repeater_battery_trouble",
        "wireless_repeater_ac_loss_trouble", "wireless_keypad_battery_trouble",
        "wireless_keypad_ac_trouble", "auxiliary_output_overload_trouble",
        "ac_failure_trouble", "low_battery_trouble", "bell_output_overload_trouble",
        "bell_output_disconnected_trouble", "computer_fail_to_communicate_trouble",
        "voice_fail_to_communicate_trouble", "pager_fail_to_communicate_trouble",
        "central_2_reporting_ftc_indicator_trouble",
        "central_1_reporting_ftc_indicator_trouble", "telephone_line", "trouble"),
}
# Flags per partition (<base>/states/partitions/<label>/<flag>).
PARTITION_FLAGS: dict[Family, tuple[str, ...]] = {
    "evo": (
        "fire_alarm", "audible_alarm", "silent_alarm", "was_in_alarm", "arm_no_entry",
        "arm_stay", "arm_away", "arm", "lockout", "programming", "zone_bypassed",
        "alarm_in_memory", "trouble", "entry_delay", "exit_delay", "ready",
        "zone_supervision_trouble", "zone_fire_loop_trouble", "zone_low_battery_trouble",
        "zone_tamper_trouble", "voice_arming", "auto_arming_engaged",
        "fire_delay_in_progress", "intellizone_engage", "time_to_refresh_zone_status",
        "panic_alarm", "police_code_delay", "follow_become_delay", "remote_arming",
        "stay_arming_auto", "partition_recently_close",
        "cancel_alarm_reporting_on_disarming", "tx_delay_finished", "auto_arm_reach",
        "fire_delay_end", "no_movement_delay_end", "alarm_duration_finished",
        "entry_delay_finished", "exit_delay_finished", "intellizone_delay_finished",
        "all_zone_closed", "inhibit_ready", "bypass_ready", "force_ready",
        "stay_instant_ready", "bell"),
    "sp": (
        "alarm", "pulse_fire_alarm", "audible_alarm", "silent_alarm", "strobe_alarm",
        "arm_stay", "arm_sleep", "arm", "bell_activated", "auto_arming_engaged",
        "recent_closing_delay", "intellizone_delay", "zone_bypassed", "alarms_in_memory",
        "entry_delay", "exit_delay", "paramedic_alarm", "arm_with_remote",
        "transmission_delay_finished", "bell_delay_finished", "entry_delay_finished",
        "exit_delay_finished", "intellizone_delay_finished", "wait_window",
        "in_remote_delay", "stayd_mode_active", "arm_force", "ready_status"),
}
# The flags that make PAI's current_state "triggered".
ALARM_FLAGS: dict[Family, tuple[str, ...]] = {
    "evo": ("fire_alarm", "audible_alarm", "silent_alarm", "panic_alarm"),
    "sp": ("audible_alarm", "silent_alarm"),
}
# Flags per zone (<base>/states/zones/<label>/<flag>).
ZONE_FLAGS: dict[Family, tuple[str, ...]] = {
    "evo": ("open", "tamper", "low_battery", "generated_alarm", "presently_in_alarm",
            "activated_entry_delay", "activated_intellizone_delay", "bypassed",
            "shutted_down", "tx_delay", "supervision_trouble"),
    "sp": ("open", "tamper", "fire", "rf_supervision_trouble", "rf_low_battery_trouble",
           "exit_delay", "was_in_alarm", "alarm", "fire_delay", "entry_delay",
           "intellizone_delay", "no_delay", "bypassed", "shutdown", "in_tx_delay",
           "was_bypassed"),
}

# Sub-device flags per family: (PAI's element topic, label default, flags).
SUB_DEVICES: dict[Family, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "evo": (("bus-module", ("aux_trouble", "battery_fail", "ac_trouble", "printer_trouble",
                            "fail_to_comm", "tlm_trouble", "rom_error", "tamper",
                            "assigned", "missing")),),
    "sp": (("bus-module", ("supervision_trouble", "tamper")),
           ("repeaters", ("supervision_trouble", "ac_loss_trouble",
                          "battery_failure_trouble")),
           ("keypads", ("supervision_failure_trouble", "ac_loss_trouble",
                        "battery_failure_trouble")),
           ("outputs", ("tamper", "supervision_trouble"))),
}


class PaiBridge:
    """PAI in front of one panel, publishing to a broker (see the module docstring)."""

    def __init__(self, host: str, port: int, family: Family, *, base: str = "paradox",
                 partitions: Iterable[str] = ("Area_1",),
                 zones: Iterable[str] = ("Front_door", "Hall_PIR"), numeric: bool = False,
                 devices: Iterable[str] = ("Module_1", "Module_2"),
                 username: str | None = None, password: str | None = None) -> None:
        self.family, self.base, self.numeric = family, base, numeric
        self.partitions, self.zones = tuple(partitions), tuple(zones)
        self.devices = tuple(devices)  # labels of each sub-device element
        self.device = SimDevice(host, port, f"pai-{family}-{base}"[:40],
                                availability_topic=f"{base}/interface/availability",
                                username=username, password=password)
        self.state: dict[str, str] = {}

    def _word(self, flag: bool) -> str:
        return ("1" if flag else "0") if self.numeric else str(flag)

    async def start(self) -> None:
        """Connect (Will: offline), say online, publish the whole panel status."""
        await self.device.start(heartbeats=False)
        await self._publish("interface/pai_status", "online")
        for name in TROUBLES[self.family]:
            await self._publish(f"states/system/troubles/{name}", self._word(False))
        for name, volts in (("vdc", "16.9"), ("battery", "13.6"), ("dc", "13.9")):
            await self._publish(f"states/system/power/{name}", volts)
        for partition in self.partitions:
            for flag in PARTITION_FLAGS[self.family]:
                await self._publish(f"states/partitions/{partition}/{flag}", self._word(False))
            await self._current_state(partition)
        for zone in self.zones:
            for flag in ZONE_FLAGS[self.family]:
                await self._publish(f"states/zones/{zone}/{flag}", self._word(False))
        for element, flags in SUB_DEVICES[self.family]:
            for label in self.devices:
                for flag in flags:
                    await self._publish(f"states/{element}/{label}/{flag}",
                                        self._word(flag == "assigned"))

    async def sub_device(self, element: str, label: str, flag: str, on: bool = True) -> None:
        """A bus module's, repeater's, keypad's or output's flag (``element`` as PAI's
        topic: bus-module, repeaters, keypads, outputs)."""
        await self._publish(f"states/{element}/{label}/{flag}", self._word(on))

    async def trouble(self, name: str, on: bool = True) -> None:
        await self._publish(f"states/system/troubles/{name}", self._word(on))

    async def zone(self, zone: str, flag: str, on: bool = True) -> None:
        await self._publish(f"states/zones/{zone}/{flag}", self._word(on))

    async def partition(self, partition: str, flag: str, on: bool = True) -> None:
        await self._publish(f"states/partitions/{partition}/{flag}", self._word(on))
        await self._current_state(partition)

    async def _current_state(self, partition: str) -> None:
        prefix = f"states/partitions/{partition}/"
        alarm = any(self.state.get(prefix + flag) in ("True", "1")
                    for flag in ALARM_FLAGS[self.family])
        armed = self.state.get(prefix + "arm") in ("True", "1")
        word = "triggered" if alarm else ("armed_away" if armed else "disarmed")
        if self.state.get(prefix + "current_state") != word:
            await self._publish(prefix + "current_state", word)

    async def _publish(self, suffix: str, payload: str) -> None:
        self.state[suffix] = payload
        await self.device.publish(f"{self.base}/{suffix}", payload, retain=True)

    async def crash(self) -> None:
        await self.device.crash()

    async def close(self) -> None:
        await self.device.close()


class FrigateStats:
    """Frigate's availability and periodic stats (see the module docstring)."""

    def __init__(self, host: str, port: int, cameras: Mapping[str, float], *,
                 prefix: str = "frigate", interval: float = 1.0, legacy: bool = False,
                 health: bool = False,
                 username: str | None = None, password: str | None = None) -> None:
        self.prefix, self.interval, self.legacy = prefix, interval, legacy
        self.cameras: dict[str, float] = dict(cameras)     # camera name → camera_fps
        self.health = health
        # camera → role (detect, record) → online | offline | disabled
        self.status: dict[str, dict[str, str]] = {
            name: {"detect": "online", "record": "online"} for name in cameras}
        self.device = SimDevice(host, port, f"frigate-{prefix}"[:40],
                                availability_topic=f"{prefix}/available",
                                username=username, password=password)
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def document(self) -> dict[str, object]:
        cameras = {name: {"camera_fps": fps, "process_fps": fps, "skipped_fps": 0.0,
                          "detection_fps": round(fps / 5, 2), "detection_enabled": True,
                          "pid": 100 + i, "capture_pid": 200 + i, "ffmpeg_pid": 300 + i,
                          "audio_rms": 0.0, "audio_dBFS": 0.0}
                   for i, (name, fps) in enumerate(self.cameras.items())}
        totals = {"camera_fps": round(sum(self.cameras.values()), 2),
                  "detection_fps": round(sum(self.cameras.values()) / 5, 2),
                  "detectors": {"cpu": {"inference_speed": 10.0, "pid": 99}},
                  "service": {"uptime": 1234, "version": "0.12.1" if self.legacy
                              else "0.14.1"}}
        if self.legacy:
            return {**cameras, **totals}
        return {"cameras": cameras, **totals}

    async def start(self) -> None:
        await self.device.start(heartbeats=False)
        if self.health:
            for name in self.status:
                await self.set_enabled(name, True)
        self._task = asyncio.create_task(self._loop(), name=f"frigate {self.prefix} stats")

    async def set_enabled(self, camera: str, on: bool) -> None:
        """Frigate's runtime camera switch (retained ``enabled/state``); a camera turned
        off reports its streams ``disabled``."""
        await self.device.publish(f"{self.prefix}/{camera}/enabled/state",
                                  "ON" if on else "OFF", retain=True)
        for role in self.status.get(camera, {}):
            self.status[camera][role] = "online" if on else "disabled"

    async def publish_stats(self) -> None:
        await self.device.publish(f"{self.prefix}/stats", json.dumps(self.document()))
        if self.health:
            for name, roles in self.status.items():
                for role, word in roles.items():
                    await self.device.publish(f"{self.prefix}/{name}/status/{role}", word)
        self.sent += 1

    async def _loop(self) -> None:
        while True:
            await self.publish_stats()
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.device.close()
