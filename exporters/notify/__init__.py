"""Notifications of ticket events: webhook, email, WeCom and DingTalk group bots.

``NotifyConfig`` (config.py) says which events go where; ``build_notifiers`` (receivers.py)
makes the notifiers from it and the credentials; a ``Dispatcher`` (dispatcher.py) routes,
rate-limits, retries and records them in a ``NotificationLog`` (log.py).
"""

from elvwatch.exporters.notify.base import (
    Message,
    Notifier,
    NotifyConfigError,
    NotifyError,
    SendResult,
)
from elvwatch.exporters.notify.config import NotifyConfig
from elvwatch.exporters.notify.dispatcher import Dispatcher
from elvwatch.exporters.notify.log import MemoryNotificationLog, NotificationLog, SqlNotificationLog
from elvwatch.exporters.notify.receivers import build_notifiers

__all__ = [
    "Dispatcher",
    "MemoryNotificationLog",
    "Message",
    "NotificationLog",
    "Notifier",
    "NotifyConfig",
    "NotifyConfigError",
    "NotifyError",
    "SendResult",
    "SqlNotificationLog",
    "build_notifiers",
]
