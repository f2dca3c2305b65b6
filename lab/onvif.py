"""A simulated ONVIF camera: real HTTP/SOAP on a loopback address (aiohttp).

Answers GetDeviceInformation, GetSystemDateAndTime (camera clock = real clock +
``clock_offset``), GetServices (or, with ``get_services=False``, a fault, as old
firmware does), GetCapabilities (its Extension naming DeviceIO and, on a recorder,
Recording/Search/Replay), GetProfiles, GetStreamUri, GetSnapshotUri, events
(GetEventProperties advertising ``event_topics``, CreatePullPointSubscription,
PullMessages, Renew, Unsubscribe) and, with ``recording_jobs``, the Recording service
(GetRecordingJobs, GetRecordingJobState: an NVR or a camera with an SD card;
``idle_jobs`` more configured Idle), from our templates (``lab.onvif_xml``) or from
recorded responses given per operation (``responses={"GetStreamUri": b"<...>"}``).
``pull_ignores_timeout`` answers PullMessages at once, empty, whatever Timeout asked
(firmware that does not long-poll).  Every operation but
GetSystemDateAndTime (pre-auth per the ONVIF core spec) needs a WS-UsernameToken whose
Created time is within ``AUTH_WINDOW`` of the camera's clock, as real cameras check;
the snapshot URL needs HTTP digest.

Faults (``OnvifFault``), switched at runtime: auth failure, no stream, garbage,
truncated and huge bodies (chunked, or announced in Content-Length; ``huge_sent`` counts
the bytes each one got onto the socket before the client hung up), a hang, and
recording stopped (recording job 1 reports ``Error``; ``recording(False)`` also raises
the JobState event).  ``raise_event``
queues a notification on every live subscription (``tamper()``, ``signal_loss()``,
``storage_failure()`` raise the usual ones; ``info.serial`` may be changed at runtime).
Events are kept by ``elvwatch.lab.onvif_pullpoint.EventBroker``: every event raised is a
property (its state per topic and source, sent ``Initialized`` to each new
subscription, as real cameras do) unless raised as a pulse.  ``stop()``/``start()`` is a
reboot: subscriptions are forgotten, the property states are not — a rebooted camera
reads its sensors again, and a lens still covered is still tampered; so events raised
while stopped set the state the camera reports once it is back.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import ipaddress
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from elvwatch.lab import onvif_xml as X
from elvwatch.lab.devices import LOOPBACK
from elvwatch.lab.digest import DigestRealm
from elvwatch.lab.onvif_pullpoint import EventBroker, text_of, wait_for_event
from elvwatch.lab.onvif_xml import EventTopic

# Cameras reject a UsernameToken whose Created differs from their clock by more than a
# few seconds to minutes; 30 s makes an unadjusted client fail against any real skew.
AUTH_WINDOW = 30.0
MAX_HANG = 60.0
HUGE_BYTES = 64 * 1024 * 1024
_BOOL = "xs:boolean"
# The topics the simulator's own helpers raise (tamper(), signal_loss(), …).
CAMERA_TOPICS = [
    EventTopic("tns1:VideoSource/GlobalSceneChange/ImagingService",
               (("Source", "tt:ReferenceToken"),), (("State", _BOOL),)),
    EventTopic("tns1:VideoSource/SignalLoss", (("VideoSource", "tt:ReferenceToken"),),
               (("State", _BOOL),)),
    EventTopic("tns1:Device/HardwareFailure/StorageFailure", (("Token", "tt:ReferenceToken"),),
               (("Failed", _BOOL),)),
    EventTopic("tns1:VideoSource/MotionAlarm", (("Source", "tt:ReferenceToken"),),
               (("State", _BOOL),)),
]
JOB_STATE_TOPIC = EventTopic("tns1:RecordingConfig/JobState",
                             (("RecordingJobToken", "tt:RecordingJobReference"),),
                             (("State", "xs:string"),))


class OnvifFault(StrEnum):
    NONE = "none"
    AUTH_FAIL = "auth_fail"    # every authenticated call: HTTP 400 ter:NotAuthorized
    NO_STREAM = "no_stream"    # GetStreamUri answers a fault
    GARBAGE = "garbage"        # 200 with a body that is not XML
    TRUNCATED = "truncated"    # Content-Length of the full answer, half sent, closed
    HUGE = "huge"              # a 200 answer of HUGE_BYTES, chunked (no Content-Length)
    HUGE_SIZED = "huge_sized"  # the same, announced in Content-Length
    HANG = "hang"              # accept, never answer (until MAX_HANG or stop)
    RECORDING_STOPPED = "recording_stopped"  # recording job 1 in state Error


@dataclass(slots=True)
class DeviceInfo:
    manufacturer: str = "HIKVISION"
    model: str = "DS-2CD2143G2-I"
    firmware: str = "V5.7.3 build 220112"
    serial: str = "DS-2CD2143G2-I20220301AAWRJ12345678"
    hardware: str = "88"


class OnvifSimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, username: str = "admin",
                 password: str = "secret", *, info: DeviceInfo | None = None,
                 clock_offset: float = 0.0, utc_field: bool = True, tz: str = "CST-8",
                 tz_hours: float = 8.0, rtsp_port: int = 554,
                 profiles: list[tuple[str, str, int, int]] | None = None,
                 responses: dict[str, bytes] | None = None,
                 snapshot: bytes | None = None, recording_jobs: int = 0,
                 idle_jobs: int = 0, get_services: bool = True,
                 event_topics: list[EventTopic] | None = None,
                 pull_ignores_timeout: bool = False) -> None:
        if ipaddress.ip_address(host) not in LOOPBACK:
            raise ValueError(f"the lab binds loopback addresses only, not {host!r}")
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.info = info or DeviceInfo()
        self.clock_offset = clock_offset
        self.utc_field, self.tz, self.tz_hours = utc_field, tz, tz_hours
        self.rtsp_port = rtsp_port
        self.profiles = profiles or [("Profile_1", "H264", 1920, 1080),
                                     ("Profile_2", "H264", 640, 360)]
        self.responses = dict(responses or {})
        self.recording_jobs = recording_jobs
        self.idle_jobs = idle_jobs
        self.get_services = get_services
        self.event_topics = event_topics if event_topics is not None else [
            *CAMERA_TOPICS, *([JOB_STATE_TOPIC] if recording_jobs else [])]
        # Job number → the state GetRecordingJobState answers (default Active).
        self.job_states: dict[int, str] = {}
        self.snapshot = snapshot if snapshot is not None else scene_jpeg(1920, 1080)
        self.fault = OnvifFault.NONE
        self.calls: list[str] = []          # operations received, in order
        self.auth_failures = 0
        # Per huge answer, once it ended: (operation, bytes the socket took).
        self.huge_sent: list[tuple[str, int]] = []
        self.events = EventBroker(ignore_timeout=pull_ignores_timeout)
        self._digest = DigestRealm("IP Camera", username, password)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def now(self) -> dt.datetime:
        """The camera's clock (UTC), whole seconds as cameras report it."""
        real = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset)
        return real.replace(microsecond=0)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/onvif/{service}", self._soap)
        app.router.add_post("/onvif/pullpoint/{sid}", self._soap)
        app.router.add_get("/onvif/snapshot.jpg", self._snapshot)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]

    async def listen_also(self, host: str) -> None:
        """Answer on ``host`` too (same port, same camera): a benchmark serves thousands
        of camera addresses from one simulator instead of one simulator each."""
        if ipaddress.ip_address(host) not in LOOPBACK:
            raise ValueError(f"the lab binds loopback addresses only, not {host!r}")
        if self._runner is None:
            raise RuntimeError("start the simulator first")
        await web.TCPSite(self._runner, host, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Stop listening and forget every subscription (a reboot, if started again)."""
        self._stopping.set()
        self.events.forget()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OnvifSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def raise_event(self, topic: str, source: dict[str, str], data: dict[str, str],
                    operation: str = "Changed") -> None:
        """Set a property's state and notify every live subscription (none while
        stopped: the state is what the camera reports when it is back).  ``operation``
        "" sends a pulse event: no PropertyOperation, nothing kept."""
        self.events.raise_event(topic, source, data, operation, self.now())

    def tamper(self, active: bool = True) -> None:
        self.raise_event("tns1:VideoSource/GlobalSceneChange/ImagingService",
                         {"Source": "VideoSource_1"}, {"State": str(active).lower()})

    def signal_loss(self, active: bool = True) -> None:
        """Video source 1 loses (or regains) its input: the ONVIF SignalLoss event."""
        self.raise_event("tns1:VideoSource/SignalLoss", {"VideoSource": "VideoSource_1"},
                         {"State": str(active).lower()})

    def storage_failure(self, active: bool = True) -> None:
        """Disk 1 fails (or is back): the ONVIF Device/HardwareFailure/StorageFailure event."""
        self.raise_event("tns1:Device/HardwareFailure/StorageFailure", {"Token": "Storage_1"},
                         {"Failed": str(active).lower()})

    def recording(self, active: bool) -> None:
        """Stop (or restart) recording job 1, raising the JobState event as NVRs do."""
        self.fault = OnvifFault.NONE if active else OnvifFault.RECORDING_STOPPED
        self.job_state(1, "Active" if active else "Error")

    def job_state(self, job: int, state: str) -> None:
        """Recording job ``job`` goes to ``state`` (Idle, Active, PartiallyActive,
        Error): the poll's GetRecordingJobState and the JobState event say it."""
        self.job_states[job] = state
        self.raise_event("tns1:RecordingConfig/JobState",
                         {"RecordingJobToken": f"RecordingJob_{job}"}, {"State": state})

    @property
    def subscriptions(self) -> int:
        return len(self.events.subscriptions)

    @property
    def _subscriptions(self) -> dict[str, object]:
        """The live subscriptions (a test clears them: the camera dropped us)."""
        return self.events.subscriptions  # type: ignore[return-value]

    @property
    def pulls(self) -> int:
        return self.events.pulls

    @property
    def properties(self) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """The property states a new subscription is told: (topic, source, data)."""
        return [(topic, dict(source), dict(data))
                for topic, source, data in self.events.properties.values()]

    # -- HTTP handlers -------------------------------------------------------------

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        if not self._digest.verify(request.headers.get("Authorization"), "GET"):
            return web.Response(status=401, headers={
                "WWW-Authenticate": self._digest.challenge()})
        return web.Response(body=self.snapshot, content_type="image/jpeg")

    async def _soap(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return _xml(X.fault("ter:InvalidArgVal", "malformed request"), 400)
        operation, payload = _operation(root)
        self.calls.append(operation)
        if self.fault is OnvifFault.HANG:
            await wait_for_event(self._stopping, MAX_HANG)
            return _xml(X.fault("ter:Action", "rebooting"), 503)
        if operation != "GetSystemDateAndTime" and not self._authorized(root):
            self.auth_failures += 1
            return _xml(X.fault("ter:NotAuthorized", "Sender not Authorized"), 400)
        answer, status = await self._answer(operation, payload, request)
        return await self._send(request, operation, answer, status)

    def _authorized(self, root: ET.Element) -> bool:
        if self.fault is OnvifFault.AUTH_FAIL:
            return False
        token = root.find(".//{{{}}}UsernameToken".format(X.NS["wsse"]))
        if token is None:
            return False
        user = token.findtext("{{{}}}Username".format(X.NS["wsse"]), "")
        password = token.find("{{{}}}Password".format(X.NS["wsse"]))
        nonce = token.findtext("{{{}}}Nonce".format(X.NS["wsse"]), "")
        created = token.findtext("{{{}}}Created".format(X.NS["wsu"]), "")
        if user != self.username or password is None:
            return False
        try:
            when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            raw_nonce = base64.b64decode(nonce)
        except ValueError:
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if abs((when - self.now()).total_seconds()) > AUTH_WINDOW:
            return False
        if (password.get("Type") or "").endswith("#PasswordText"):
            return secrets.compare_digest(password.text or "", self.password)
        digest = base64.b64encode(hashlib.sha1(
            raw_nonce + created.encode() + self.password.encode()).digest()).decode()
        return secrets.compare_digest(password.text or "", digest)

    async def _answer(self, operation: str, payload: ET.Element | None,
                      request: web.Request) -> tuple[bytes, int]:
        if operation in self.responses:
            return self.responses[operation], 200
        now = self.now()
        if operation == "GetDeviceInformation":
            i = self.info
            return X.device_information(i.manufacturer, i.model, i.firmware, i.serial,
                                        i.hardware), 200
        if operation == "GetSystemDateAndTime":
            return X.system_date_and_time(now, self.tz, self.tz_hours, self.utc_field), 200
        if operation == "GetServices":
            if not self.get_services:
                return X.fault("ter:ActionNotSupported", "GetServices not supported",
                               "env:Receiver"), 500
            return X.services(self.base, recording=self.recording_jobs > 0), 200
        if operation == "GetCapabilities":
            return X.capabilities(self.base, recording=self.recording_jobs > 0), 200
        if operation == "GetEventProperties":
            return X.event_properties(self.event_topics), 200
        if operation == "GetProfiles":
            return X.profiles(self.profiles), 200
        if operation in ("GetRecordingJobs", "GetRecordingJobState") and self.recording_jobs:
            return self._recording(operation, text_of(payload, "JobToken"))
        token = text_of(payload, "ProfileToken")
        if operation in ("GetStreamUri", "GetSnapshotUri"):
            index = next((n for n, p in enumerate(self.profiles, 1) if p[0] == token), 0)
            if not index:
                return X.fault("ter:InvalidArgVal", "no such profile"), 400
            if operation == "GetSnapshotUri":
                uri = f"{self.base}/onvif/snapshot.jpg?profile={token}"
                return X.media_uri(operation, uri), 200
            if self.fault is OnvifFault.NO_STREAM:
                return X.fault("ter:Action", "no stream available", "env:Receiver"), 500
            uri = f"rtsp://{self.host}:{self.rtsp_port}/Streaming/Channels/{index}01"
            return X.media_uri(operation, uri), 200
        return await self.events.answer(operation, payload, request.match_info.get("sid", ""),
                                        self.base, self.now)

    def _recording(self, operation: str, job: str) -> tuple[bytes, int]:
        jobs = [(f"RecordingJob_{n}", f"Recording_{n}",
                 "Active" if n <= self.recording_jobs else "Idle")
                for n in range(1, self.recording_jobs + self.idle_jobs + 1)]
        if operation == "GetRecordingJobs":
            return X.recording_jobs(jobs), 200
        number = next((n for n, j in enumerate(jobs, 1) if j[0] == job), 0)
        if not number:
            return X.fault("ter:InvalidArgVal", "no such recording job"), 400
        _, recording, mode = jobs[number - 1]
        state = self.job_states.get(number, "Active" if mode == "Active" else "Idle")
        if self.fault is OnvifFault.RECORDING_STOPPED and number == 1:
            state = "Error"
        return X.recording_job_state(recording, state), 200

    async def _send(self, request: web.Request, operation: str, answer: bytes,
                    status: int) -> web.StreamResponse:
        if self.fault is OnvifFault.GARBAGE:
            return web.Response(body=b"<<<\x00 this is not SOAP", content_type="text/xml")
        if self.fault is OnvifFault.TRUNCATED:
            response = web.StreamResponse(status=status, headers={
                "Content-Type": "application/soap+xml"})
            response.content_length = len(answer)
            await response.prepare(request)
            await response.write(answer[: len(answer) // 2])
            if request.transport is not None:
                request.transport.close()
            return response
        if self.fault in (OnvifFault.HUGE, OnvifFault.HUGE_SIZED):
            return await self._send_huge(request, operation, answer)
        return _xml(answer, status)

    async def _send_huge(self, request: web.Request, operation: str,
                         answer: bytes) -> web.StreamResponse:
        """HUGE_BYTES: the answer's first bytes, then blanks; written in chunks, each
        counted once the socket took it, until done or the client hangs up."""
        response = web.StreamResponse(headers={"Content-Type": "application/soap+xml"})
        if self.fault is OnvifFault.HUGE_SIZED:
            response.content_length = HUGE_BYTES
        head = answer[:60]
        chunk = b" " * 65536
        pieces = [head, *[chunk] * ((HUGE_BYTES - len(head)) // len(chunk))]
        pieces.append(b" " * (HUGE_BYTES - len(head) - len(chunk) * (len(pieces) - 1)))
        sent = 0
        try:
            await response.prepare(request)
            for piece in pieces:
                await response.write(piece)
                sent += len(piece)
            await response.write_eof()
        except ConnectionError:
            pass        # the client stopped reading and closed: what we wanted to see
        finally:
            self.huge_sent.append((operation, sent))
        return response


def _xml(body: bytes, status: int) -> web.Response:
    return web.Response(body=body, status=status,
                        headers={"Content-Type": "application/soap+xml; charset=utf-8"})


def _operation(root: ET.Element) -> tuple[str, ET.Element | None]:
    body = root.find("{{{}}}Body".format(X.NS["env"]))
    if body is None or len(body) == 0:
        return "", None
    element = body[0]
    return element.tag.rsplit("}", 1)[-1], element


def scene_jpeg(width: int, height: int, black: bool = False) -> bytes:
    """A JPEG of a gradient scene (or all black: a covered lens / video loss)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (0, 0, 0))
    if not black:
        draw = ImageDraw.Draw(image)
        for x in range(0, width, 8):
            shade = 40 + (x * 180) // max(width, 1)
            draw.rectangle((x, 0, x + 7, height), fill=(shade, shade // 2, 255 - shade))
        draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(230, 230, 40))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()
