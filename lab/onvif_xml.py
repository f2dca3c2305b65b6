"""SOAP envelopes the simulated ONVIF device answers with (our own templates).

Element order follows the ONVIF schemas (onvif.xsd, devicemgmt.wsdl, media.wsdl,
event.wsdl), so strict parsers accept them.  Recorded real-camera responses replace
any of these per operation (``OnvifSimulator(responses=...)``).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "tns1": "http://www.onvif.org/ver10/topics",
    "tnshik": "http://www.hikvision.com/2011/event/topics",
    "tnsaxis": "http://www.axis.com/2009/event/topics",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
_DECLS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {_DECLS}>'
            f"<env:Body>{body}</env:Body></env:Envelope>").encode()


def fault(subcode: str, reason: str, code: str = "env:Sender") -> bytes:
    return envelope(
        f"<env:Fault><env:Code><env:Value>{code}</env:Value><env:Subcode>"
        f"<env:Value>{subcode}</env:Value></env:Subcode></env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{escape(reason)}</env:Text></env:Reason>'
        "</env:Fault>")


def device_information(manufacturer: str, model: str, firmware: str, serial: str,
                       hardware: str) -> bytes:
    return envelope(
        "<tds:GetDeviceInformationResponse>"
        f"<tds:Manufacturer>{escape(manufacturer)}</tds:Manufacturer>"
        f"<tds:Model>{escape(model)}</tds:Model>"
        f"<tds:FirmwareVersion>{escape(firmware)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{escape(serial)}</tds:SerialNumber>"
        f"<tds:HardwareId>{escape(hardware)}</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>")


def _datetime(tag: str, when: dt.datetime) -> str:
    return (f"<tt:{tag}><tt:Time><tt:Hour>{when.hour}</tt:Hour>"
            f"<tt:Minute>{when.minute}</tt:Minute><tt:Second>{when.second}</tt:Second>"
            f"</tt:Time><tt:Date><tt:Year>{when.year}</tt:Year><tt:Month>{when.month}"
            f"</tt:Month><tt:Day>{when.day}</tt:Day></tt:Date></tt:{tag}>")


def system_date_and_time(utc: dt.datetime, tz: str, tz_hours: float,
                         utc_field: bool = True) -> bytes:
    """``tz`` is the POSIX TZ string the camera reports ("CST-8" is UTC+8);
    ``utc_field=False`` mimics firmwares that send only LocalDateTime."""
    local = utc + dt.timedelta(hours=tz_hours)
    utc_part = _datetime("UTCDateTime", utc) if utc_field else ""
    return envelope(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false"
        f"</tt:DaylightSavings><tt:TimeZone><tt:TZ>{escape(tz)}</tt:TZ></tt:TimeZone>"
        f"{utc_part}{_datetime('LocalDateTime', local)}"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")


def services(base: str, recording: bool = False) -> bytes:
    items = [(NS["tds"], "device_service"), (NS["trt"], "media_service"),
             (NS["tev"], "event_service")]
    if recording:
        items.append((NS["trc"], "recording_service"))
    body = "".join(
        f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
        f"<tds:XAddr>{base}/onvif/{path}</tds:XAddr><tds:Version><tt:Major>2</tt:Major>"
        "<tt:Minor>60</tt:Minor></tds:Version></tds:Service>" for ns, path in items)
    return envelope(f"<tds:GetServicesResponse>{body}</tds:GetServicesResponse>")


def capabilities(base: str, recording: bool = False) -> bytes:
    """Top-level services, and under Extension (where GetCapabilities names the
    services newer than ONVIF 1.0) DeviceIO and, with ``recording``, Recording, Search
    and Replay."""
    extension = (
        f"<tt:Extension><tt:DeviceIO><tt:XAddr>{base}/onvif/deviceio_service</tt:XAddr>"
        "<tt:VideoSources>1</tt:VideoSources><tt:VideoOutputs>0</tt:VideoOutputs>"
        "<tt:AudioSources>0</tt:AudioSources><tt:AudioOutputs>0</tt:AudioOutputs>"
        "<tt:RelayOutputs>1</tt:RelayOutputs></tt:DeviceIO>")
    if recording:
        extension += (
            f"<tt:Recording><tt:XAddr>{base}/onvif/recording_service</tt:XAddr>"
            "<tt:ReceiverSource>false</tt:ReceiverSource><tt:MediaProfileSource>true"
            "</tt:MediaProfileSource><tt:DynamicRecordings>false</tt:DynamicRecordings>"
            "<tt:DynamicTracks>false</tt:DynamicTracks><tt:MaxStringLength>64"
            "</tt:MaxStringLength></tt:Recording>"
            f"<tt:Search><tt:XAddr>{base}/onvif/search_service</tt:XAddr>"
            "<tt:MetadataSearch>false</tt:MetadataSearch></tt:Search>"
            f"<tt:Replay><tt:XAddr>{base}/onvif/replay_service</tt:XAddr></tt:Replay>")
    extension += "</tt:Extension>"
    return envelope(
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        f"<tt:Device><tt:XAddr>{base}/onvif/device_service</tt:XAddr></tt:Device>"
        f"<tt:Events><tt:XAddr>{base}/onvif/event_service</tt:XAddr>"
        "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
        "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
        "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
        "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
        f"<tt:Media><tt:XAddr>{base}/onvif/media_service</tt:XAddr>"
        "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
        "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
        "</tt:StreamingCapabilities></tt:Media>"
        f"{extension}</tds:Capabilities></tds:GetCapabilitiesResponse>")


class EventTopic(NamedTuple):
    """One topic a device advertises: ``tns1:VideoSource/SignalLoss``, its Source and
    Data items as (name, type), and whether it is a property (stateful) or a pulse."""

    topic: str
    source: tuple[tuple[str, str], ...] = ()
    data: tuple[tuple[str, str], ...] = ()
    is_property: bool = True


def _description(topic: EventTopic) -> str:
    def items(tag: str, values: tuple[tuple[str, str], ...]) -> str:
        if not values:
            return ""
        inner = "".join(f"<tt:SimpleItemDescription Name={quoteattr(n)} Type={quoteattr(t)}/>"
                        for n, t in values)
        return f"<tt:{tag}>{inner}</tt:{tag}>"
    flag = "true" if topic.is_property else "false"
    return (f'<tt:MessageDescription IsProperty="{flag}">{items("Source", topic.source)}'
            f'{items("Data", topic.data)}</tt:MessageDescription>')


def event_properties(topics: list[EventTopic]) -> bytes:
    """A GetEventPropertiesResponse whose TopicSet is the tree of ``topics``."""
    tree: dict[str, object] = {}
    for topic in topics:
        node = tree
        for level in topic.topic.split("/"):
            child = node.setdefault(level, {})
            assert isinstance(child, dict)
            node = child
        node[""] = topic

    def render(node: dict[str, object]) -> str:
        out = []
        for level, child in node.items():
            if level == "" or not isinstance(child, dict):
                continue
            own = child.get("")
            mark = "true" if isinstance(own, EventTopic) else "false"
            body = (_description(own) if isinstance(own, EventTopic) else "") + render(child)
            out.append(f'<{level} wstop:topic="{mark}">{body}</{level}>')
        return "".join(out)

    return envelope(
        "<tev:GetEventPropertiesResponse><tev:TopicNamespaceLocation>"
        "http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation>"
        f"<wsnt:FixedTopicSet>true</wsnt:FixedTopicSet><wstop:TopicSet>{render(tree)}"
        "</wstop:TopicSet><wsnt:TopicExpressionDialect>"
        "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
        "</wsnt:TopicExpressionDialect><tev:MessageContentFilterDialect>"
        "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
        "</tev:MessageContentFilterDialect><tev:MessageContentSchemaLocation>"
        "http://www.onvif.org/onvif/ver10/schema/onvif.xsd"
        "</tev:MessageContentSchemaLocation></tev:GetEventPropertiesResponse>")


def profiles(items: list[tuple[str, str, int, int]]) -> bytes:
    """``items``: (token, encoding, width, height) per media profile."""
    body = "".join(
        f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{token}</tt:Name>'
        f'<tt:VideoEncoderConfiguration token="enc_{token}"><tt:Name>enc_{token}</tt:Name>'
        f"<tt:UseCount>1</tt:UseCount><tt:Encoding>{encoding}</tt:Encoding>"
        f"<tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height>"
        "</tt:Resolution><tt:Quality>4</tt:Quality><tt:Multicast><tt:Address>"
        "<tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>"
        "<tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart>"
        "</tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
        "</tt:VideoEncoderConfiguration></trt:Profiles>"
        for token, encoding, width, height in items)
    return envelope(f"<trt:GetProfilesResponse>{body}</trt:GetProfilesResponse>")


def media_uri(operation: str, uri: str) -> bytes:
    return envelope(
        f"<trt:{operation}Response><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
        "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
        f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{operation}Response>")


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def pullpoint_created(address: str, now: dt.datetime, until: dt.datetime) -> bytes:
    return envelope(
        "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
        f"<wsa:Address>{escape(address)}</wsa:Address></tev:SubscriptionReference>"
        f"<wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime>"
        f"<wsnt:TerminationTime>{_iso(until)}</wsnt:TerminationTime>"
        "</tev:CreatePullPointSubscriptionResponse>")


def notification(topic: str, now: dt.datetime, operation: str,
                 source: dict[str, str], data: dict[str, str]) -> str:
    """One NotificationMessage; ``operation`` "" makes a pulse event (no
    PropertyOperation) and an empty ``data`` one without a Data item."""
    def items(values: dict[str, str]) -> str:
        return "".join(f"<tt:SimpleItem Name={quoteattr(k)} Value={quoteattr(v)}/>"
                       for k, v in values.items())
    op = f' PropertyOperation="{operation}"' if operation else ""
    data_part = f"<tt:Data>{items(data)}</tt:Data>" if data else ""
    return (
        '<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/'
        f'topicExpression/ConcreteSet">{escape(topic)}</wsnt:Topic><wsnt:Message>'
        f'<tt:Message UtcTime="{_iso(now)}"{op}>'
        f"<tt:Source>{items(source)}</tt:Source>{data_part}"
        "</tt:Message></wsnt:Message></wsnt:NotificationMessage>")


def pull_messages(now: dt.datetime, until: dt.datetime, messages: list[str]) -> bytes:
    return envelope(
        f"<tev:PullMessagesResponse><tev:CurrentTime>{_iso(now)}</tev:CurrentTime>"
        f"<tev:TerminationTime>{_iso(until)}</tev:TerminationTime>{''.join(messages)}"
        "</tev:PullMessagesResponse>")


def renewed(now: dt.datetime, until: dt.datetime) -> bytes:
    return envelope(
        f"<wsnt:RenewResponse><wsnt:TerminationTime>{_iso(until)}</wsnt:TerminationTime>"
        f"<wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime></wsnt:RenewResponse>")


def unsubscribed() -> bytes:
    return envelope("<wsnt:UnsubscribeResponse/>")


def recording_jobs(jobs: list[tuple[str, str, str]]) -> bytes:
    """``jobs``: (job token, recording token, mode Active|Idle)."""
    body = "".join(
        f"<trc:JobItem><tt:JobToken>{escape(job)}</tt:JobToken><tt:JobConfiguration>"
        f"<tt:RecordingToken>{escape(recording)}</tt:RecordingToken>"
        f"<tt:Mode>{mode}</tt:Mode><tt:Priority>1</tt:Priority>"
        "</tt:JobConfiguration></trc:JobItem>" for job, recording, mode in jobs)
    return envelope(f"<trc:GetRecordingJobsResponse>{body}</trc:GetRecordingJobsResponse>")


def recording_job_state(recording: str, state: str) -> bytes:
    """``state``: Idle, Active, PartiallyActive or Error (ONVIF RecordingJobState)."""
    return envelope(
        "<trc:GetRecordingJobStateResponse><trc:State>"
        f"<tt:RecordingToken>{escape(recording)}</tt:RecordingToken>"
        f"<tt:State>{state}</tt:State></trc:State></trc:GetRecordingJobStateResponse>")
