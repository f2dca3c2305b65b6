"""Recording jobs read by the onvif check from a simulated NVR, over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from elvwatch.lab.onvif import OnvifFault, OnvifSimulator
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.onvif import clear_hold_offs, probe_onvif
from elvwatch.probes.onvif_options import OnvifOptions

CRED = Credential("nvr", "admin", Secret("secret"))


@pytest.fixture(autouse=True)
def _no_hold_offs() -> None:
    clear_hold_offs()


async def poll(sim: OnvifSimulator, **options: object) -> Observation:
    target = Target("nvr-1", sim.host, kind="nvr", credential=CRED)
    check = Check("onvif", "onvif", port=sim.port,
                  options=OnvifOptions.model_validate({"stream": False, **options}))
    async with asyncio.timeout(15):
        return await probe_onvif(target, check)


async def test_recording_nvr_reports_no_stopped_jobs() -> None:
    async with OnvifSimulator(recording_jobs=4) as nvr:
        obs = await poll(nvr)
    assert obs.status is Status.OK, obs.error
    assert obs.values["onvif.recording_supported"] == 1
    assert (obs.values["onvif.recording_jobs"], obs.values["onvif.recordings_stopped"]) == (4, 0)


async def test_recording_stopped_fault_is_its_own_value_and_degrades_the_check() -> None:
    async with OnvifSimulator(recording_jobs=4) as nvr:
        nvr.fault = OnvifFault.RECORDING_STOPPED
        obs = await poll(nvr)
        assert nvr.calls.count("GetRecordingJobState") == 4
    assert obs.values["onvif.recordings_stopped"] == 1
    assert obs.status is Status.DEGRADED
    assert obs.error is not None and "recording stopped: 1 of 4 jobs (RecordingJob_1=Error)" \
        in obs.error


async def test_camera_without_recording_service_reports_no_recording_values() -> None:
    async with OnvifSimulator() as camera:
        obs = await poll(camera)
        assert "GetRecordingJobs" not in camera.calls
    assert obs.values["onvif.recording_supported"] == 0
    assert "onvif.recordings_stopped" not in obs.values


async def test_recording_can_be_switched_off() -> None:
    async with OnvifSimulator(recording_jobs=1) as nvr:
        nvr.fault = OnvifFault.RECORDING_STOPPED
        obs = await poll(nvr, recording=False)
        assert "GetRecordingJobs" not in nvr.calls
    assert obs.status is Status.OK and "onvif.recordings_stopped" not in obs.values
