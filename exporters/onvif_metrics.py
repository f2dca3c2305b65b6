"""``elvwatch_onvif_*`` families of the ONVIF events source (per-camera subscription
state and event counters); the ONVIF poll's own values (clock offset, stream up,
snapshot ok…) are device value gauges built in exporters/metrics.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from elvwatch.exporters.exposition import Family, label_text
from elvwatch.probes.onvif_event_source import OnvifEventStats
from elvwatch.probes.onvif_pullpoint import PullPointState

# Every type starts at zero, so rate()/increase() see a camera's first tamper event.
EVENT_TYPES = ("tamper", "too_dark", "signal_loss", "storage_failure", "storage_full",
               "recording", "motion", "other")
_LABELS = ("site", "system", "device", "kind", "check")


def onvif_event_families(cameras: Sequence[OnvifEventStats]) -> Iterator[Family]:
    state = Family("elvwatch_onvif_event_subscription_state",
                   "1 for the state the camera's PullPoint subscription is in.")
    received = Family("elvwatch_onvif_events_received",
                      "ONVIF event notifications received, by type.", "counter")
    subscribes = Family("elvwatch_onvif_event_subscribes",
                        "PullPoint subscriptions created (the first, and after each loss).",
                        "counter")
    renewals = Family("elvwatch_onvif_event_renewals", "PullPoint subscriptions renewed.",
                      "counter")
    lost = Family("elvwatch_onvif_event_subscriptions_lost",
                  "Working subscriptions lost (camera rebooted or dropped it).", "counter")
    pulls = Family("elvwatch_onvif_event_pulls",
                   "PullMessages calls (a fast rise: a camera that does not long-poll).",
                   "counter")
    for camera in cameras:
        base = label_text(_LABELS, (camera.site, camera.system, camera.device, camera.kind,
                                    camera.check))
        for st in PullPointState:
            state.add(f'{base},state="{st.value}"', 1.0 if camera.state == st.value else 0.0)
        for kind in EVENT_TYPES:
            received.add(f'{base},type="{kind}"', camera.received.get(kind, 0), "_total")
        subscribes.add(base, camera.subscribes, "_total")
        renewals.add(base, camera.renewals, "_total")
        lost.add(base, camera.lost, "_total")
        pulls.add(base, camera.pulls, "_total")
    yield from (state, received, subscribes, renewals, lost, pulls)
