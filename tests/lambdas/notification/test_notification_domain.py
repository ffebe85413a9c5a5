"""Notification domain without I/O: event mapping, routing, templates, retry policy, redaction, signatures,
settings validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aipx.money import to_pb
from aipx.v1.common_pb2 import Side
from aipx.v1.decisions_pb2 import AnalystVote, Decision, Verdict, Vote
from aipx.v1.orders_pb2 import Fill, Order, OrderEvent, OrderEventType, OrderStatus, RejectReason
from aipx_notification.channels.base import parse_retry_after
from aipx_notification.channels.webhook import sign, verify_signature
from aipx_notification.domain.events import from_decision, from_order_event
from aipx_notification.domain.redaction import Redactor
from aipx_notification.domain.routing import Router, TemplateError
from aipx_notification.settings import NotificationSettings
from pydantic import ValidationError


def filled() -> OrderEvent:
    return OrderEvent(
        event_id="ev-1",
        type=OrderEventType.ORDER_EVENT_TYPE_FILLED,
        account_id="acct",
        order_id="o-1",
        order=Order(
            order_id="o-1",
            symbol="BTC-USDT",
            side=Side.SIDE_BUY,
            quantity=to_pb("0.010"),
            status=OrderStatus.ORDER_STATUS_FILLED,
            filled_quantity=to_pb("0.010"),
            average_fill_price=to_pb("30001.5"),
        ),
        fill=Fill(quantity=to_pb("0.010"), price=to_pb("30001.5")),
    )


def test_order_and_decision_events_are_flattened() -> None:
    event = from_order_event(filled())
    assert event.event_type == "order.filled" and event.event_id == "ev-1"
    assert event.fields["side"] == "BUY" and event.fields["fill_price"] == "30001.5"
    denied = from_order_event(
        OrderEvent(event_id="ev-2", type=OrderEventType.ORDER_EVENT_TYPE_DENIED,
                   reason=RejectReason.REJECT_REASON_MAX_NOTIONAL_EXCEEDED, reason_message="too big")
    )  # fmt: skip
    assert denied.event_type == "order.denied" and denied.fields["reason"] == "MAX_NOTIONAL_EXCEEDED"
    decision = from_decision(
        Decision(decision_id="d-1", verdict=Verdict.VERDICT_APPROVE, symbol="ETH-USDT", confidence=0.8123,
                 votes=[AnalystVote(analyst="risk_reward", vote=Vote.VOTE_LONG, confidence=0.9)])
    )  # fmt: skip
    assert decision.event_type == "decision.approve" and decision.fields["confidence"] == "0.81"
    assert decision.fields["votes"] == "risk_reward=LONG(0.90)"
    with pytest.raises(ValueError, match="without event_id"):
        from_order_event(OrderEvent())


def test_routing_and_templates() -> None:
    router = Router.build(
        {"order.filled": ["telegram"], "order.*": ["webhook:ops"], "decision.approve": ["*"]},
        {"order.filled": "filled {fill_quantity} {symbol} @ {fill_price}"},
        ["telegram", "slack", "webhook:ops"],
    )
    event = from_order_event(filled())
    assert router.channels_for(event) == ["telegram", "webhook:ops"]
    assert router.render(event) == "filled 0.010 BTC-USDT @ 30001.5"
    accepted = from_order_event(OrderEvent(event_id="e", type=OrderEventType.ORDER_EVENT_TYPE_ACCEPTED))
    assert router.channels_for(accepted) == ["webhook:ops"]
    assert router.render(accepted).startswith("[ACCEPTED]")
    reject = from_decision(Decision(decision_id="d", verdict=Verdict.VERDICT_REJECT))
    assert router.channels_for(reject) == []
    approve = from_decision(Decision(decision_id="d", verdict=Verdict.VERDICT_APPROVE))
    assert router.channels_for(approve) == ["telegram", "slack", "webhook:ops"]


def test_bad_routes_and_templates_are_rejected() -> None:
    with pytest.raises(ValueError, match="not configured"):
        Router.build({"order.*": ["slack"]}, {}, ["telegram"])
    with pytest.raises(TemplateError, match="unknown field"):
        Router.build({}, {"order.filled": "{nope}"}, [])
    with pytest.raises(TemplateError, match="unknown field"):
        Router.build({}, {"decision.*": "{fill_price}"}, [])
    with pytest.raises(TemplateError):
        Router.build({}, {"order.*": "{symbol"}, [])
    with pytest.raises(TemplateError, match="start with"):
        Router.build({}, {"fill": "x"}, [])


def test_retry_after_header() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0 ") == 0.0
    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_redactor_masks_secrets_and_their_url_encoding() -> None:
    redact = Redactor(["123456:ABC-DEF", "https://hooks.slack.test/services/T0/B0/xyz", "ab"])
    text = "GET /bot123456:ABC-DEF/sendMessage failed; url=https://hooks.slack.test/services/T0/B0/xyz ab"
    assert redact(text) == "GET /bot***/sendMessage failed; url=*** ab"
    assert redact("bot123456%3AABC-DEF") == "bot***"


def test_webhook_signature() -> None:
    body = b'{"a":1}'
    header = sign("s3cret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature("s3cret", body, header)
    assert not verify_signature("s3cret", body + b" ", header)
    assert not verify_signature("other", body, header) and not verify_signature("s3cret", body, None)


def test_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_NOTIFICATION_TELEGRAM_BOT_TOKEN", "t0ken")
    with pytest.raises(ValidationError, match="TELEGRAM_CHAT_ID"):
        NotificationSettings()
    monkeypatch.setenv("AIPX_NOTIFICATION_TELEGRAM_CHAT_ID", "42")
    monkeypatch.setenv(
        "AIPX_NOTIFICATION_WEBHOOKS", '[{"name": "ops", "url": "http://x/h", "secret": "k3y!"}]'
    )
    monkeypatch.setenv("AIPX_NOTIFICATION_ROUTES", '{"order.*": ["telegram", "webhook:ops"]}')
    settings = NotificationSettings()
    assert settings.channel_names() == ["telegram", "webhook:ops"]
    assert "t0ken" not in repr(settings) and "k3y!" not in repr(settings)
    monkeypatch.setenv("AIPX_NOTIFICATION_ROUTES", '{"order.*": ["slack"]}')
    with pytest.raises(ValidationError, match="not configured"):
        NotificationSettings()
    monkeypatch.setenv("AIPX_NOTIFICATION_ROUTES", "{}")
    monkeypatch.setenv("AIPX_NOTIFICATION_TEMPLTES", "{}")
    with pytest.raises(ValidationError, match="unknown setting"):
        NotificationSettings()
