"""The analysis endpoint (Lambda function URL): analyse a symbol now, get the votes and the rationale.

    GET  /analysis/{venue}/{symbol}   analyse the latest signal seen for the instrument (404 if none yet)
    POST /analysis                    analyse the TradingSignal in the body (protobuf JSON mapping)

Nothing is decided, ordered or published here. Response: {"signal_id", "strategy_id", "venue", "symbol",
"direction", "verdict": "APPROVE"|"REJECT", "confidence", "votes": [{"analyst", "vote", "confidence",
"rationale"}], "checks": [{"name", "passed", "detail"}], "rationale"}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aipx.v1.signals_pb2 import SignalDirection, TradingSignal
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError
from google.protobuf import json_format

from aipx_cognitive.domain.ensemble import Assessment
from aipx_cognitive.service import CognitiveService, InvalidSignalError


def assessment_json(signal: TradingSignal, assessment: Assessment) -> dict[str, Any]:
    return {
        "signal_id": signal.signal_id,
        "strategy_id": signal.strategy_id,
        "venue": signal.venue,
        "symbol": signal.symbol,
        "direction": SignalDirection.Name(signal.direction).removeprefix("SIGNAL_DIRECTION_"),
        "verdict": "APPROVE" if assessment.approved else "REJECT",
        "confidence": round(assessment.confidence, 4),
        "votes": [o.to_json() for o in assessment.opinions],
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in assessment.checks],
        "rationale": assessment.rationale,
    }


def build_app(service: Callable[[], CognitiveService]) -> LambdaFunctionUrlResolver:
    """The resolver with its routes; `service` gives the function's service (built lazily)."""
    app = LambdaFunctionUrlResolver()

    def analyse(signal: TradingSignal) -> dict[str, Any]:
        try:
            return assessment_json(signal, service().analyse(signal))
        except InvalidSignalError as exc:
            raise BadRequestError(str(exc)) from exc

    @app.get("/analysis/<venue>/<symbol>")
    def analyse_latest(venue: str, symbol: str) -> dict[str, Any]:
        signal = service().latest_signal(venue, symbol.upper())
        if signal is None:
            raise NotFoundError(f"no signal seen yet for {venue}:{symbol.upper()}")
        return analyse(signal)

    @app.post("/analysis")
    def analyse_posted() -> dict[str, Any]:
        body = app.current_event.json_body
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object (a TradingSignal)")
        try:
            signal = json_format.ParseDict(body, TradingSignal())
        except json_format.ParseError as exc:
            raise BadRequestError(f"not a TradingSignal: {exc}") from exc
        if not signal.symbol:
            raise BadRequestError("symbol is required")
        return analyse(signal)

    return app
