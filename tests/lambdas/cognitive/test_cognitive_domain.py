"""Cognitive domain without I/O: analysts, LLM reply parsing, the validation rules, decisions and orders."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from aipx.money import from_pb
from aipx.v1.common_pb2 import Side
from aipx.v1.decisions_pb2 import Verdict, Vote
from aipx.v1.orders_pb2 import OrderType, TimeInForce
from aipx.v1.signals_pb2 import SignalDirection, TradingSignal
from aipx_cognitive.domain.analysts import LlmAnalyst, RiskRewardAnalyst, TechnicalConfluenceAnalyst
from aipx_cognitive.domain.analysts.llm import UnusableReplyError, parse_reply, user_prompt
from aipx_cognitive.domain.decisions import (
    AutoTradingPolicy,
    build_decision,
    client_order_id,
    decision_id,
    order_request,
)
from aipx_cognitive.domain.ensemble import Ensemble, ValidationPolicy, validate
from aipx_cognitive.domain.model import Opinion, SignalView, Stance

SignalFactory = Callable[..., TradingSignal]
SHORT = SignalDirection.SIGNAL_DIRECTION_SHORT
CLOSE = SignalDirection.SIGNAL_DIRECTION_CLOSE
POLICY = ValidationPolicy()


def view(factory: SignalFactory, **kw: object) -> SignalView:
    return SignalView.of(factory(**kw))


def test_technical_confluence(signal_factory: SignalFactory) -> None:
    analyst = TechnicalConfluenceAnalyst()
    bullish = analyst.judge(view(signal_factory))
    assert bullish.stance is Stance.LONG and bullish.confidence == pytest.approx(0.5 + (4 + 1) / 6 / 2)
    assert "agreeing bollinger, macd_stochastic, rsi_ema, supertrend" in bullish.rationale
    against = analyst.judge(view(signal_factory, biases={"supertrend": -1.0, "bollinger": -1.0}, trend=-1.0))
    assert against.stance is Stance.SHORT
    mixed = analyst.judge(view(signal_factory, biases={"supertrend": 1.0, "bollinger": -1.0}, trend=0.0))
    assert mixed.stance is Stance.NEUTRAL
    # The signal's own strategy does not vouch for itself.
    own = analyst.judge(view(signal_factory, biases={"ema_cross": 1.0}, trend=None))
    assert own.stance is Stance.ABSTAIN


def test_risk_reward(signal_factory: SignalFactory) -> None:
    analyst = RiskRewardAnalyst(1.5)
    good = analyst.judge(view(signal_factory))  # risk 100, reward 300
    assert good.stance is Stance.LONG and good.confidence == pytest.approx(0.5 + 0.25 * 2)
    poor = analyst.judge(view(signal_factory, target="30100"))
    assert poor.stance is Stance.NEUTRAL and "1.00 < 1.5" in poor.rationale
    wrong = analyst.judge(view(signal_factory, stop="30100"))
    assert wrong.stance is Stance.NEUTRAL and "wrong side" in wrong.rationale
    assert analyst.judge(view(signal_factory, stop=None)).stance is Stance.ABSTAIN
    short = analyst.judge(view(signal_factory, direction=SHORT, stop="30100", target="29700"))
    assert short.stance is Stance.SHORT


def test_llm_reply_parsing() -> None:
    o = parse_reply(
        "llm_x", 'Sure:\n```json\n{"vote": "short", "confidence": 0.8, "rationale": " a\n b "}\n```'
    )
    assert (o.stance, o.confidence, o.rationale) == (Stance.SHORT, 0.8, "a b")
    for bad, why in (
        ("no json here", "no JSON"),
        ('{"vote": "BUY", "confidence": 0.5}', "unknown vote"),
        ('{"vote": "LONG", "confidence": 1.5}', "confidence"),
        ('{"vote": "LONG", "confidence": true}', "confidence"),
        ('{"vote": "LONG", "confidence": 0.5', "no JSON"),
        ('{"vote": LONG}', "invalid JSON"),
    ):
        with pytest.raises(UnusableReplyError, match=why):
            parse_reply("llm_x", bad)


class ScriptedChat:
    """A ChatClient with a scripted answer (the SDK-backed clients are tested against a stub server)."""

    def __init__(self, reply: str | Exception | None = None, delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.prompts: list[tuple[str, str]] = []

    async def complete(self, system: str, user: str) -> str:
        self.prompts.append((system, user))
        await asyncio.sleep(self.delay)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply or ""


async def test_llm_analyst_abstains_instead_of_failing(signal_factory: SignalFactory) -> None:
    v = view(signal_factory)
    assert (await LlmAnalyst("llm_a", None).assess(v)).rationale == "no API key configured"
    chat = ScriptedChat('{"vote": "LONG", "confidence": 0.9, "rationale": "trend and R/R agree"}')
    ok = await LlmAnalyst("llm_a", chat).assess(v)
    assert ok.stance is Stance.LONG and ok.confidence == 0.9
    assert '"symbol": "BTC-USDT"' in chat.prompts[0][1] and "JSON" in chat.prompts[0][0]
    failed = await LlmAnalyst("llm_a", ScriptedChat(ConnectionError("boom"))).assess(v)
    assert failed.stance is Stance.ABSTAIN and failed.rationale == "model call failed: ConnectionError"
    slow = await LlmAnalyst("llm_a", ScriptedChat("{}", delay=1.0), timeout_s=0.05).assess(v)
    assert slow.stance is Stance.ABSTAIN and "no answer within" in slow.rationale
    garbled = await LlmAnalyst("llm_a", ScriptedChat("I think it goes up")).assess(v)
    assert garbled.stance is Stance.ABSTAIN and "unusable reply" in garbled.rationale
    assert '"risk_reward": 3.0' in user_prompt(v)


def opinions(*stances: tuple[Stance, float]) -> list[Opinion]:
    return [Opinion(f"a{i}", s, c, "") for i, (s, c) in enumerate(stances)]


def test_validation_rules(signal_factory: SignalFactory) -> None:
    v = view(signal_factory)
    L, S, N, A = Stance.LONG, Stance.SHORT, Stance.NEUTRAL, Stance.ABSTAIN
    ok = validate(v, opinions((L, 0.8), (L, 0.9), (N, 0.6), (A, 0.0)), POLICY)
    assert ok.approved and ok.confidence == pytest.approx(0.85) and ok.rationale.startswith("approved")
    # Two of three agreeing approves; one of three does not.
    assert validate(v, opinions((L, 0.8), (L, 0.8), (S, 0.9)), POLICY).approved
    lone = validate(v, opinions((L, 0.9), (N, 0.8), (S, 0.9)), POLICY)
    assert not lone.approved and "quorum" in lone.rationale
    # Abstentions count neither way: two agreeing voters out of two approve.
    assert validate(v, opinions((L, 0.8), (L, 0.8), (A, 0), (A, 0)), POLICY).approved
    timid = validate(v, opinions((L, 0.6), (L, 0.7)), POLICY)
    assert not timid.approved and "confidence 0.65" in timid.rationale
    against_trend = validate(view(signal_factory, trend=-1.0), opinions((L, 0.9), (L, 0.9)), POLICY)
    assert not against_trend.approved and "trend -1 vs direction +1" in against_trend.rationale
    unknown_trend = validate(view(signal_factory, trend=None), opinions((L, 0.9), (L, 0.9)), POLICY)
    assert "trend unknown" in unknown_trend.rationale
    relaxed = ValidationPolicy(require_trend_agreement=False)
    assert validate(view(signal_factory, trend=None), opinions((L, 0.9), (L, 0.9)), relaxed).approved
    poor = validate(view(signal_factory, target="30100"), opinions((L, 0.9), (L, 0.9)), POLICY)
    assert not poor.approved and "risk/reward 1.00" in poor.rationale
    close = validate(view(signal_factory, direction=CLOSE), opinions((L, 0.9), (L, 0.9)), POLICY)
    assert not close.approved and "only LONG and SHORT" in close.rationale


async def test_ensemble_runs_the_analysts_and_survives_a_broken_one(signal_factory: SignalFactory) -> None:
    class Broken:
        name = "broken"

        async def assess(self, v: SignalView) -> Opinion:
            raise RuntimeError("bug")

    ensemble = Ensemble([TechnicalConfluenceAnalyst(), RiskRewardAnalyst(), Broken()], POLICY)
    result = await ensemble.assess(view(signal_factory))
    assert [o.stance for o in result.opinions] == [Stance.LONG, Stance.LONG, Stance.ABSTAIN]
    assert result.approved
    with pytest.raises(ValueError, match="duplicate"):
        Ensemble([RiskRewardAnalyst(), RiskRewardAnalyst()], POLICY)


def test_decision_and_order(signal_factory: SignalFactory) -> None:
    signal = signal_factory(signal_id="0f6d7c9e-8a4b-5c3d-9e2f-1a2b3c4d5e6f")
    assessment = validate(SignalView.of(signal), opinions((Stance.LONG, 0.8), (Stance.LONG, 0.9)), POLICY)
    decision = build_decision(signal, assessment, decided_time_ns=42)
    assert decision.decision_id == decision_id(signal.signal_id) == decision_id(signal.signal_id)
    assert decision.verdict == Verdict.VERDICT_APPROVE and decision.confidence == pytest.approx(0.85)
    assert [v.vote for v in decision.votes] == [Vote.VOTE_LONG, Vote.VOTE_LONG]
    coid = client_order_id(signal.signal_id, "acct-1")
    assert coid == client_order_id(signal.signal_id, "acct-1") != client_order_id(signal.signal_id, "acct-2")
    assert len(coid) <= 64 and re.fullmatch(r"[A-Za-z0-9._:/-]+", coid)

    policy = AutoTradingPolicy(True, "acct-1", frozenset({"ema_cross"}), {"BTC-USDT": Decimal("0.010")})
    assert policy.why_not(signal) is None
    assert "disabled" in (AutoTradingPolicy(False, "a", frozenset({"*"}), {}).why_not(signal) or "")
    assert "strategy ema_cross" in (
        AutoTradingPolicy(True, "a", frozenset({"supertrend"}), {"BTC-USDT": Decimal(1)}).why_not(signal)
        or ""
    )
    assert "no order quantity" in (AutoTradingPolicy(True, "a", frozenset({"*"}), {}).why_not(signal) or "")
    market = order_request(signal, policy, decision)
    assert market.client_order_id == coid and market.side == Side.SIDE_BUY
    assert (market.type, market.time_in_force) == (OrderType.ORDER_TYPE_MARKET, TimeInForce.TIME_IN_FORCE_IOC)
    assert from_pb(market.quantity) == Decimal("0.010") and not market.price.value
    assert market.tags["signal_id"] == signal.signal_id and market.tags["decision_id"] == decision.decision_id
    limit_policy = AutoTradingPolicy(True, "acct-1", frozenset({"*"}), {"BTC-USDT": Decimal(1)}, "limit")
    limit = order_request(signal, limit_policy, decision)
    assert limit.type == OrderType.ORDER_TYPE_LIMIT and from_pb(limit.price) == Decimal("30000")
    short = signal_factory(direction=SHORT, stop="30100", target="29700")
    short_decision = build_decision(short, assessment, decided_time_ns=1)
    assert order_request(short, policy, short_decision).side == Side.SIDE_SELL


def test_signal_without_a_price_is_rejected_clearly(signal_factory: SignalFactory) -> None:
    with pytest.raises(ValueError, match="reference price"):
        SignalView.of(signal_factory(price="0"))
