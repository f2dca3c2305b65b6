"""The event topics a camera advertises (GetEventProperties' ``wstop:TopicSet``).

A TopicSet is a tree of elements, one level per topic level
(``<tns1:VideoSource><SignalLoss wstop:topic="true">…``); a level that is a topic has
``wstop:topic="true"`` and a message description (ONVIF ``tt:MessageDescription``
with ``IsProperty`` and its Source/Data item names; Axis' VAPIX GetEventInstances
answers the same tree with ``aev:MessageInstance``).  Only what a camera advertises
can reassure: a camera without a signal-loss topic never sends one, so its silence
must not read as "no video loss".

Element names and attributes are device-sent: counts and depth are bounded, names too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from elvwatch.probes.base import bounded

WSTOP = "http://docs.oasis-open.org/wsn/t-1"
MAX_TOPICS = 512
MAX_DEPTH = 12
_DESCRIPTIONS = ("MessageDescription", "MessageInstance")


@dataclass(frozen=True, slots=True)
class AdvertisedTopic:
    topic: str                     # tns1:VideoSource/SignalLoss
    is_property: bool | None       # None when the description does not say
    data: tuple[str, ...]          # names of its Data items (none: a pulse event)


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _name(element: Any) -> str:
    prefix = getattr(element, "prefix", None)
    local = _local(element.tag)
    return bounded(f"{prefix}:{local}" if prefix else local, 64)


def topic_set(elements: Iterable[Any]) -> list[AdvertisedTopic]:
    """The topics under the TopicSet's child elements (lxml or ElementTree)."""
    out: list[AdvertisedTopic] = []
    for element in elements:
        for topic in _walk(element, (), 0):
            out.append(topic)
            if len(out) >= MAX_TOPICS:
                return out
    return out


def _walk(element: Any, path: tuple[str, ...], depth: int) -> Iterator[AdvertisedTopic]:
    if depth >= MAX_DEPTH or not isinstance(element.tag, str):
        return                                   # comments, processing instructions
    path = (*path, _name(element))
    description = next((c for c in element if isinstance(c.tag, str)
                        and _local(c.tag) in _DESCRIPTIONS), None)
    if element.get(f"{{{WSTOP}}}topic") == "true" or description is not None:
        yield _topic(path, description)
    for child in element:
        if isinstance(child.tag, str) and _local(child.tag) not in _DESCRIPTIONS and \
                _local(child.tag) != "documentation":
            yield from _walk(child, path, depth + 1)


def _topic(path: tuple[str, ...], description: Any) -> AdvertisedTopic:
    if description is None:
        return AdvertisedTopic("/".join(path), None, ())
    flag = next((v for k, v in description.attrib.items()
                 if _local(k).lower() == "isproperty"), None)
    is_property = None if flag is None else flag.strip().lower() == "true"
    data: list[str] = []
    for part in description:
        if isinstance(part.tag, str) and _local(part.tag).startswith("Data"):
            data += [bounded(item.get("Name") or "", 64) for item in part.iter()
                     if item is not part and item.get("Name")]
    return AdvertisedTopic("/".join(path), is_property, tuple(data[:16]))


def from_answer(answer: dict[str, Any]) -> list[AdvertisedTopic] | None:
    """The topics of a serialized GetEventProperties answer; None when it has no
    TopicSet we can read (then nothing is known about what the camera can send)."""
    topic_set_part = answer.get("TopicSet")
    elements = topic_set_part.get("_value_1") if isinstance(topic_set_part, dict) else None
    if not isinstance(elements, list):
        return None
    return topic_set(e for e in elements if hasattr(e, "tag"))
