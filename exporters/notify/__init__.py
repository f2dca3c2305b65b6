"""Notifications of ticket events: webhook, email, WeCom and DingTalk group bots.

``NotifyConfig`` (config.py) says which events go where; ``build_notifiers`` (receivers.py)
makes the notifiers from it and the credentials; a ``Dispatcher`` (dispatcher.py) routes,
rate-limits, retries and records them in a ``NotificationLog`` (log.py).
"""
