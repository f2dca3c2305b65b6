"""Recording jobs of an ONVIF device with the Recording service (NVRs, cameras with SD
cards): whether each job that should record is recording.

GetRecordingJobs lists the jobs with their configured ``Mode`` (``Active``: the device
shall record; ``Idle``: switched off on purpose); GetRecordingJobState gives each
job's actual ``State`` (``Idle``, ``Active``, ``PartiallyActive``, ``Error``).  A job
configured Active whose state is anything but Active counts as stopped
(``onvif.recordings_stopped``, read by the built-in ``recording_stopped`` rule):
PartiallyActive means some track is not being recorded, which is the same loss of
evidence for the channel it belongs to.  The events source reads the JobState events
with the same meaning (:func:`elvwatch.probes.onvif_events.is_recording`) and the same jobs
(:func:`active_jobs`), so the two never tell the rule different things.

Values: ``onvif.recording_jobs`` (jobs configured Active), ``onvif.recordings_stopped``.
"""

from __future__ import annotations

from typing import Any

from elvwatch.probes.base import Value, bounded
from elvwatch.probes.onvif_client import OnvifFailure, call, serialize
from elvwatch.probes.onvif_events import is_recording

# An NVR has one job per channel; 256 covers the largest ones and bounds what a
# misbehaving device can make us ask for.
MAX_JOBS = 256


async def active_jobs(service: Any) -> tuple[list[str], set[str]]:
    """The job tokens configured Active, and the recording tokens they record into."""
    items = await call(service.GetRecordingJobs()) or []
    jobs: list[str] = []
    recordings: set[str] = set()
    for item in list(items)[:MAX_JOBS]:
        job = serialize(item)
        config = job.get("JobConfiguration")
        mode = config.get("Mode") if isinstance(config, dict) else None
        if str(mode or "").strip().lower() == "active":
            jobs.append(str(job.get("JobToken") or "").strip())
            if isinstance(config, dict) and config.get("RecordingToken"):
                recordings.add(str(config["RecordingToken"]).strip())
    return jobs, recordings


async def recording_values(camera: Any, values: dict[str, Value],
                           problems: list[str]) -> None:
    """Add the recording values; a failure of the service is a problem, not a crash.
    Authentication and reachability failures propagate (they end the poll)."""
    try:
        service = await call(camera.create_recording_service())
        active, _ = await active_jobs(service)
        stopped: list[str] = []
        for token in active:
            answer = serialize(await call(service.GetRecordingJobState({"JobToken": token})))
            state = answer.get("State")
            word = str((state.get("State") if isinstance(state, dict) else state) or "")
            if is_recording(word) is not True:
                stopped.append(f"{bounded(token, 32)}={bounded(word or '?', 16)}")
    except OnvifFailure as exc:
        if exc.final:
            raise
        problems.append(f"recording: {exc}")
        return
    values["onvif.recording_jobs"] = float(len(active))
    values["onvif.recordings_stopped"] = float(len(stopped))
    if stopped:
        problems.append(bounded(f"recording stopped: {len(stopped)} of {len(active)} jobs "
                                f"({', '.join(stopped[:8])})"))
