"""The cognitive function's work for one signal: assess, decide (once), order (when allowed), publish.

The first decision made for a signal is kept in Redis before anything acts on it, so a retried signal (after
a crash or a failed publish) keeps its verdict even though LLM answers may vary; the order is submitted with a
client order id derived from the signal id, so the OMS returns the existing order instead of placing a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aipx.ids import now_ns
from aipx.lambda_kit import AsyncRuntime
from aipx.topics import TRADING_DECISIONS, catalogue
from aipx.v1.decisions_pb2 import Decision, Verdict
from aipx.v1.orders_pb2 import OrderStatus
from aipx.v1.signals_pb2 import TradingSignal
from aws_lambda_powertools import Logger

from aipx_cognitive.adapters.llm import AnthropicChat, OpenAiChat
from aipx_cognitive.adapters.oms import OmsOrders, OrderRefusedError
from aipx_cognitive.adapters.store import CognitiveStore
from aipx_cognitive.domain.analysts import Analyst, LlmAnalyst, RiskRewardAnalyst, TechnicalConfluenceAnalyst
from aipx_cognitive.domain.decisions import AutoTradingPolicy, build_decision, decision_id, order_request
from aipx_cognitive.domain.ensemble import Assessment, Ensemble
from aipx_cognitive.domain.model import SignalView
from aipx_cognitive.settings import CognitiveSettings

FUNCTION = "cognitive"
# A child of the handler's powertools Logger: same JSON format, same correlation id.
log = Logger(service=FUNCTION, child=True)


class InvalidSignalError(ValueError):
    """A signal that cannot be assessed (e.g. no valid reference price)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one signal did (the JSON of it is what idempotency remembers)."""

    decision: Decision
    order_created: bool | None  # None: no order was submitted

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision.decision_id,
            "verdict": Verdict.Name(self.decision.verdict),
            "client_order_id": self.decision.client_order_id,
            "order_created": self.order_created,
        }


def build_analysts(settings: CognitiveSettings) -> list[Analyst]:
    """The ensemble's analysts; an LLM analyst without an API key gets no client and abstains."""
    openai_key, anthropic_key = settings.openai_api_key, settings.anthropic_api_key
    timeout_s, retries = settings.llm_timeout_s, settings.llm_max_retries
    return [
        TechnicalConfluenceAnalyst(),
        RiskRewardAnalyst(settings.min_risk_reward),
        LlmAnalyst(
            "llm_openai",
            OpenAiChat(
                api_key=openai_key.get_secret_value(),
                model=settings.openai_model,
                base_url=settings.openai_base_url,
                timeout_s=timeout_s,
                max_retries=retries,
            )
            if openai_key
            else None,
            settings.llm_timeout_s,
        ),
        LlmAnalyst(
            "llm_anthropic",
            AnthropicChat(
                api_key=anthropic_key.get_secret_value(),
                model=settings.anthropic_model,
                base_url=settings.anthropic_base_url,
                timeout_s=timeout_s,
                max_retries=retries,
            )
            if anthropic_key
            else None,
            settings.llm_timeout_s,
        ),
    ]


class CognitiveService:
    def __init__(
        self,
        settings: CognitiveSettings,
        *,
        runtime: AsyncRuntime,
        store: CognitiveStore,
        ensemble: Ensemble,
        oms: OmsOrders | None,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.store = store
        self.ensemble = ensemble
        self.oms = oms
        self.auto_trading: AutoTradingPolicy = settings.auto_trading_policy()
        self.clock = clock
        self.decision_key = catalogue().get(TRADING_DECISIONS).key_for

    @classmethod
    def from_settings(cls, settings: CognitiveSettings, runtime: AsyncRuntime) -> CognitiveService:
        store = CognitiveStore(
            settings.redis.url.get_secret_value(),
            prefix=settings.state_key_prefix,
            ttl_s=settings.state_ttl_s,
        )
        oms = (
            OmsOrders(
                settings.oms_target,
                api_key=settings.oms_api_key.get_secret_value(),
                timeout_s=settings.oms_timeout_s,
                tls=settings.oms_tls,
            )
            if settings.oms_api_key
            else None
        )
        ensemble = Ensemble(build_analysts(settings), settings.validation_policy())
        return cls(settings, runtime=runtime, store=store, ensemble=ensemble, oms=oms)

    @staticmethod
    def view(signal: TradingSignal) -> SignalView:
        try:
            return SignalView.of(signal)
        except ValueError as exc:
            raise InvalidSignalError(str(exc)) from exc

    def handle_signal(self, signal: TradingSignal) -> Outcome:
        """Decide on a signal from trading-signals, order if allowed, publish the decision (sync facade)."""
        return self.runtime.run(self._handle(signal))

    def analyse(self, signal: TradingSignal) -> Assessment:
        """Assess a signal now, without deciding, ordering or publishing (the HTTP endpoint)."""
        return self.runtime.run(self.ensemble.assess(self.view(signal)))

    def latest_signal(self, venue: str, symbol: str) -> TradingSignal | None:
        return self.runtime.run(self.store.latest_signal(venue, symbol))

    async def _handle(self, signal: TradingSignal) -> Outcome:
        view = self.view(signal)
        await self.store.remember_signal(signal)
        decision = await self.store.decision(decision_id(signal.signal_id))
        if decision is None:
            assessment = await self.ensemble.assess(view)
            decision = await self.store.remember_decision(
                build_decision(signal, assessment, decided_time_ns=self.clock())
            )
        created: bool | None = None
        if decision.verdict == Verdict.VERDICT_APPROVE:
            created = await self._order(signal, decision)
        publisher = await self.runtime.publisher()
        await publisher.publish(
            self.settings.decisions_topic,
            self.decision_key(symbol=decision.symbol),
            decision,
            event_id=decision.decision_id,
            event_time_ns=decision.decided_time_ns,
            trace_id=signal.signal_id,
        )
        return Outcome(decision, created)

    async def close(self) -> None:
        """Close the Redis and OMS connections (tests; a Lambda container keeps them while warm)."""
        await self.store.close()
        if self.oms is not None:
            await self.oms.close()

    async def _order(self, signal: TradingSignal, decision: Decision) -> bool | None:
        """Submit the order of an approved decision when auto-trading allows; notes the outcome in the
        decision's rationale. True/False: order created now / already existed; None: not submitted."""
        why_not = self.auto_trading.why_not(signal)
        if why_not is None and self.oms is None:
            why_not = "no OMS API key configured"
        if why_not is not None:
            decision.rationale += f"; no order: {why_not}"
            return None
        assert self.oms is not None
        request = order_request(signal, self.auto_trading, decision)
        try:
            response = await self.oms.submit(request)
        except OrderRefusedError as exc:
            log.warning("OMS refused the order", extra={"client_order_id": request.client_order_id})
            decision.rationale += f"; order refused by the OMS: {exc}"
            return None
        order = response.order
        decision.client_order_id = request.client_order_id
        status = OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")
        decision.rationale += f"; order {order.order_id} {status}"
        if order.reject_message:
            decision.rationale += f" ({order.reject_message})"
        return response.created
