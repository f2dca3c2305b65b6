"""Notifier health: per receiver, what was sent, failed, is waiting for a retry or in
the queue, and when a message last got through; and how much of the local spool the
store has not seen yet."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from elvwatch.exporters.exposition import Family, label_text
from elvwatch.exporters.notify.dispatcher import ReceiverStats


def notify_families(stats: Mapping[str, ReceiverStats],
                    unsynced: int | None) -> Iterator[Family]:
    sent = Family("elvwatch_notify_notifications_sent",
                  "Notifications a receiver accepted (one per event).", "counter")
    failed = Family("elvwatch_notify_notifications_failed",
                    "Notifications given up on: refused, or out of retries.", "counter")
    messages = Family("elvwatch_notify_messages_sent",
                      "Messages a receiver accepted (a summary carries several "
                      "notifications).", "counter")
    retries = Family("elvwatch_notify_retries", "Failed attempts that were retried.",
                     "counter")
    retrying = Family("elvwatch_notify_notifications_retrying",
                      "Notifications whose last attempt failed, waiting for the next one.")
    queued = Family("elvwatch_notify_notifications_queued",
                    "Notifications waiting to be sent.")
    last = Family("elvwatch_notify_last_success_timestamp_seconds",
                  "When the receiver last accepted a message (absent until one did).")
    for name, s in sorted(stats.items()):
        labels = label_text(("receiver",), (name,))
        sent.add(labels, s.notifications_sent, "_total")
        failed.add(labels, s.notifications_failed, "_total")
        messages.add(labels, s.messages_sent, "_total")
        retries.add(labels, s.retries, "_total")
        retrying.add(labels, s.retrying)
        queued.add(labels, s.queued)
        if s.last_success is not None:
            last.add(labels, s.last_success)
    yield from (sent, failed, messages, retries, retrying, queued, last)
    if unsynced is not None:
        spool = Family("elvwatch_notify_spool_unsynced",
                       "Notification log rows in the local spool not yet copied to the "
                       "store (grows while the database is down).")
        spool.add("", unsynced)
        yield spool
