"""Metric families of the rule, ticket and push-source stages (device and scheduler
families live in exporters/metrics.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

from elvwatch.exporters.exposition import Family, escape
from elvwatch.probes.mqtt import BrokerStats
from elvwatch.rules.faults import FaultTransition
from elvwatch.tickets.lifecycle import IN_HAND, TicketState
from elvwatch.tickets.stats import TicketStats


def fault_families(firing: Sequence[FaultTransition]) -> Iterator[Family]:
    """Faults firing now: those needing attention, and those explained or muted."""
    faults = Family("elvwatch_faults_firing",
                    "1 for each fault firing now that is neither explained by a parent "
                    "device's fault nor muted by a silence.")
    muted: Counter[tuple[str, str]] = Counter()
    for fault in firing:
        if fault.root_cause or fault.suppressed_by:
            reason = "topology" if fault.root_cause else "silence"
            muted[(fault.site, reason)] += 1
            continue
        faults.add(f'site="{fault.site}",system="{fault.system}",device="{fault.device}",'
                   f'kind="{fault.kind}",rule="{escape(fault.rule)}",'
                   f'severity="{fault.severity}"', 1.0)
    suppressed = Family("elvwatch_faults_suppressed",
                        "Faults firing now but explained by a parent (topology) or muted "
                        "(silence).")
    for (site, reason), count in sorted(muted.items()):
        suppressed.add(f'site="{site}",reason="{reason}"', count)
    yield faults
    yield suppressed


SEVERITIES = ("general", "major", "emergency")


def ticket_families(stats: TicketStats, now: float,
                    sites: Mapping[str, Sequence[str]] = {}) -> Iterator[Family]:
    """``sites`` (site → its systems) starts every counter at zero, so ``rate()`` and
    ``increase()`` see the first breach or ticket of a site."""
    open_tickets = Family("elvwatch_tickets_open",
                          "Tickets not yet closed, by site, system, severity and state.")
    counts: Counter[tuple[str, str, str, str]] = Counter(
        (t.site, t.system, t.severity, t.state) for t in stats.live)
    for (site, system, severity, state), count in sorted(counts.items()):
        open_tickets.add(f'site="{site}",system="{system}",severity="{severity}",'
                         f'state="{state}"', count)
    deadline = Family("elvwatch_ticket_deadline_seconds",
                      "Seconds left to a live ticket's deadline (negative once passed).")
    for ticket in stats.live:
        base = f'site="{ticket.site}",ticket="{ticket.number}",severity="{ticket.severity}"'
        if ticket.response_due is not None and ticket.state == TicketState.OPEN \
                and not ticket.responded:
            deadline.add(base + ',deadline="response"', ticket.response_due - now)
        if ticket.resolve_due is not None and ticket.state in IN_HAND:
            deadline.add(base + ',deadline="resolve"', ticket.resolve_due - now)
    yield open_tickets
    yield deadline
    zero_breaches = {(site, sev, which): 0 for site in sites for sev in SEVERITIES
                     for which in ("response", "resolve")}
    zero_tickets = {(site, system, sev): 0 for site, systems in sites.items()
                    for system in systems for sev in SEVERITIES}
    yield _counter("elvwatch_ticket_breaches", "Ticket deadlines breached.",
                   ("site", "severity", "deadline"), {**zero_breaches, **stats.breaches})
    yield _counter("elvwatch_tickets_opened", "Tickets opened.",
                   ("site", "system", "severity"), {**zero_tickets, **stats.opened})
    yield _counter("elvwatch_tickets_verified", "Tickets verified (recovery confirmed).",
                   ("site", "system", "severity"), {**zero_tickets, **stats.verified})


def _counter(name: str, help_text: str, labels: tuple[str, str, str],
             values: Mapping[tuple[str, str, str], int]) -> Family:
    family = Family(name, help_text, "counter")
    for key, count in sorted(values.items()):
        family.add(",".join(f'{n}="{escape(v)}"' for n, v in zip(labels, key, strict=True)),
                   count, "_total")
    return family


def mqtt_families(brokers: Sequence[BrokerStats]) -> Iterator[Family]:
    connected = Family("elvwatch_mqtt_broker_connected", "1 while connected to the broker.")
    received = Family("elvwatch_mqtt_messages_received", "MQTT messages received.", "counter")
    dropped = Family("elvwatch_mqtt_messages_dropped",
                     "MQTT messages dropped because the incoming queue was full.", "counter")
    rejected = Family("elvwatch_mqtt_messages_rejected",
                      "MQTT messages rejected (malformed), by reason.", "counter")
    for broker in brokers:
        label = f'broker="{escape(broker.broker)}"'
        connected.add(label, 1.0 if broker.connected else 0.0)
        received.add(label, broker.received, "_total")
        dropped.add(label, broker.dropped, "_total")
        for reason, count in sorted(broker.rejected.items()):
            rejected.add(f'{label},reason="{escape(reason)}"', count, "_total")
    yield from (connected, received, dropped, rejected)


def trap_families(unknown_sources: int) -> Iterator[Family]:
    unknown = Family("elvwatch_snmp_traps_unknown_source",
                     "SNMP traps received from addresses no configured device has.",
                     "counter")
    unknown.add("", unknown_sources, "_total")
    yield unknown
