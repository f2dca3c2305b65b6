"""Many communities, one centre: a poller's buffer and forwarding, and what the centre
took from each poller."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from elvwatch.exporters.exposition import Family, label_text


@dataclass(frozen=True, slots=True)
class ForwarderStats:
    """A poller's side."""

    buffered: int            # observations waiting in the buffer
    dropped: int             # dropped, oldest first, because the buffer was full
    forwarded: int           # taken by the centre
    failures: int            # requests that did not get through
    last_success: float | None


@dataclass(frozen=True, slots=True)
class PollerIntake:
    """The centre's side, per poller."""

    applied: int             # observations fed into the pipeline
    duplicates: int          # sent again after a lost answer, not applied again
    skipped: int             # devices not configured here or not at the poller's sites
    last_seq: int
    heard_at: float | None
    standby: int = 0         # of sites another poller held the lease of


def forwarder_families(stats: ForwarderStats) -> Iterator[Family]:
    buffered = Family("elvwatch_poller_buffer_observations",
                      "Observations waiting in the poller's buffer for the centre.")
    buffered.add("", stats.buffered)
    dropped = Family("elvwatch_poller_buffer_dropped",
                     "Observations dropped, oldest first, because the buffer was full.",
                     "counter")
    dropped.add("", stats.dropped, "_total")
    forwarded = Family("elvwatch_poller_forwarded_observations",
                       "Observations the centre has taken.", "counter")
    forwarded.add("", stats.forwarded, "_total")
    failures = Family("elvwatch_poller_forward_failures",
                      "Requests to the centre that failed (retried with backoff).", "counter")
    failures.add("", stats.failures, "_total")
    yield from (buffered, dropped, forwarded, failures)
    if stats.last_success is not None:
        last = Family("elvwatch_poller_last_forward_timestamp_seconds",
                      "When the centre last took a batch.")
        last.add("", stats.last_success)
        yield last


def intake_families(pollers: Mapping[str, PollerIntake], reporting: Mapping[str, bool],
                    holders: Mapping[str, str]) -> Iterator[Family]:
    applied = Family("elvwatch_centre_observations_applied",
                     "Observations from a poller fed into the pipeline.", "counter")
    duplicates = Family("elvwatch_centre_observations_duplicate",
                        "Observations a poller sent again, not applied twice.", "counter")
    skipped = Family("elvwatch_centre_observations_skipped",
                     "Observations of devices not configured here or not at the poller's "
                     "sites.", "counter")
    standby = Family("elvwatch_centre_observations_standby",
                     "Observations of sites another poller held the lease of (not "
                     "applied).", "counter")
    seq = Family("elvwatch_centre_poller_last_sequence",
                 "The highest sequence number applied of the poller.")
    heard = Family("elvwatch_centre_poller_last_heard_timestamp_seconds",
                   "When the poller's last batch arrived (absent until one did).")
    for name, p in sorted(pollers.items()):
        labels = label_text(("poller",), (name,))
        applied.add(labels, p.applied, "_total")
        duplicates.add(labels, p.duplicates, "_total")
        skipped.add(labels, p.skipped, "_total")
        standby.add(labels, p.standby, "_total")
        seq.add(labels, p.last_seq)
        if p.heard_at is not None:
            heard.add(labels, p.heard_at)
    yield from (applied, duplicates, skipped, standby, seq, heard)
    sites = Family("elvwatch_site_reporting",
                   "1 while a poller of the site is heard from, 0 when the site is not "
                   "reporting (its devices then show as unknown).")
    for site, up in sorted(reporting.items()):
        sites.add(label_text(("site",), (site,)), 1.0 if up else 0.0)
    yield sites
    lease = Family("elvwatch_centre_site_lease",
                   "1 for the poller holding the site's lease: its observations count.")
    for site, poller in sorted(holders.items()):
        lease.add(label_text(("site", "poller"), (site, poller)), 1.0)
    yield lease
