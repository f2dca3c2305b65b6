"""The notify config (strict, no secrets in URLs), routing, and message rendering."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from elvwatch.exporters.notify.base import NotifyConfigError
from elvwatch.exporters.notify.config import NotifyConfig
from elvwatch.exporters.notify.messages import md_escape, render, render_summary
from elvwatch.exporters.notify.receivers import build_notifiers
from elvwatch.probes.base import Credential, Secret
from elvwatch.tickets.events import TicketEventKind
from tests.notify_peers import event


def load(data: dict[str, Any]) -> NotifyConfig:
    return NotifyConfig.model_validate(data)


@pytest.mark.parametrize(("data", "error"), [
    ({"receivers": {"a": {"type": "wecom", "options": {
        "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"}}}},
     "carries a secret (key)"),
    ({"receivers": {"a": {"type": "pager"}}}, "does not match any of the expected tags"),
    ({"receivers": {"a": {"type": "wecom", "colour": "red"}}}, "Extra inputs are not permitted"),
    ({"routes": [{"receivers": ["nobody"]}]}, "unknown receivers nobody"),
    ({"receivers": {"m": {"type": "email", "options": {
        "host": "h", "sender": "x@y", "to": ["not an address"]}}}}, "is not an email address"),
    ({"routes": [], "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"receivers": {"a": {"type": "dingtalk"}}, "routes": [
        {"receivers": ["a"], "events": ["exploded"]}]}, "Input should be"),
])
def test_bad_notify_config_is_refused_with_its_reason(data: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error.replace("(", r"\(").replace(")", r"\)")):
        load(data)


def test_routes_match_kind_site_and_severity_and_name_each_receiver_once() -> None:
    config = load({
        "receivers": {"ops": {"type": "wecom"}, "mgr": {"type": "dingtalk"}},
        "routes": [
            {"receivers": ["ops"], "sites": ["sunny"]},
            {"receivers": ["mgr", "ops"], "events": ["breached"], "severities": ["emergency"]},
        ]})
    breach = event(1, kind=TicketEventKind.BREACHED, severity="emergency")
    assert config.receivers_for(breach) == ["ops", "mgr"]
    assert config.receivers_for(event(2, site="moon")) == []
    assert config.receivers_for(event(3, kind=TicketEventKind.ACKNOWLEDGED)) == []
    assert config.receivers_for(event(4, kind=TicketEventKind.PREVENTIVE_DUE)) == ["ops"]


def test_build_notifiers_names_every_missing_credential_and_secret() -> None:
    config = load({"receivers": {
        "ops": {"type": "wecom", "credentials": "nope"},
        "ding": {"type": "dingtalk", "credentials": "empty"},
        "mail": {"type": "email", "credentials": "half", "options": {
            "host": "h", "sender": "x@y", "to": ["a@b"]}}}})
    credentials = {"empty": Credential(name="empty"),
                   "half": Credential(name="half", username="u")}
    with pytest.raises(NotifyConfigError) as caught:
        build_notifiers(config, credentials)
    text = str(caught.value)
    assert "ops: unknown credentials 'nope'" in text
    assert "ding: credentials must give secrets.access_token" in text
    assert "mail: SMTP login needs both" in text


def test_secrets_are_not_in_the_config_repr() -> None:
    credential = Credential(name="c", secrets=MappingProxyType({"key": Secret("k-123")}))
    config = load({"receivers": {"ops": {"type": "wecom", "credentials": "c"}}})
    notifiers = build_notifiers(config, {"c": credential})
    assert "k-123" not in repr(notifiers) and "k-123" not in repr(credential)


def test_device_text_cannot_inject_markdown_or_html() -> None:
    evil = "[点我](http://evil.example) **粗** <font color=\"warning\">x</font>\n### 标题 @all"
    message = render(event(1, title_zh=evil, note=evil, device="cam`1`"))
    for line in message.markdown.splitlines():
        assert not line.startswith("### 标题")
    assert "](http://evil" not in message.markdown and "<font color=\"warning\">x" not in \
        message.markdown
    assert "\\[点我\\]\\(http://evil\\.example\\)" in message.markdown
    assert "\\@all" in message.markdown
    assert "<font color=\"warning\">x" not in message.html and "&lt;font" in message.html
    assert "\n" not in message.subject
    assert md_escape("a\r\nb") == "a b"


def test_english_and_chinese_messages_use_the_site_language() -> None:
    zh = render(event(1))
    en = render(event(1, language="en"))
    assert zh.language == "zh-CN" and "【重大】新工单" in zh.subject and "响应时限" in zh.plain
    assert en.language == "en" and "[major]Ticket opened" in en.subject and \
        "Response due" in en.plain
    assert "2026-05-29 04:26 CST" in zh.plain  # deadlines in the configured zone
    forced = render(event(1), language="en")
    assert forced.language == "en" and "Camera down" in forced.subject


def test_summary_lists_emergencies_first_and_counts_the_rest() -> None:
    events = [event(n, severity="general") for n in range(40)] + \
        [event(99, severity="emergency", title_zh="报警主机离线")]
    summary = render_summary(events)
    assert summary.summary and "41 条工单通知(1 条紧急)" in summary.subject
    first = summary.plain.splitlines()[2]
    assert "【紧急】" in first and "报警主机离线" in first
    assert "另有 11 条" in summary.plain and len(summary.events) == 41
