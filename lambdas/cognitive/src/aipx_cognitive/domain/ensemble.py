"""The ensemble vote and the signal validation of the original design.

The original validator approved a signal when the AI confidence was above 70 %, the signal agreed with the
predicted direction, and risk/reward was above 1.5, with the three-model ensemble needing two of three models
to agree. Here, with the analysts of this function, a signal is APPROVED only when every check passes:

* quorum      — at least `min_agreeing_votes` analysts (two of three in the original) vote the signal's
                direction, and more vote for it than against it (abstentions count for neither);
* confidence  — the ensemble confidence (mean confidence of the agreeing votes) >= `min_confidence`;
* trend       — the signal agrees with the trend filter (`trend` indicator), when `require_trend_agreement`;
* risk/reward — reward / risk from the signal's levels >= `min_risk_reward`.

Anything else is REJECTED, with every failed check named in the rationale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aipx_cognitive.domain.analysts import Analyst
from aipx_cognitive.domain.model import Opinion, SignalView, Stance


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    min_confidence: float = 0.7
    min_risk_reward: float = 1.5
    min_agreeing_votes: int = 2
    require_trend_agreement: bool = True


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """The votes on one signal and the verdict they lead to."""

    view: SignalView
    opinions: tuple[Opinion, ...]
    approved: bool
    confidence: float
    checks: tuple[Check, ...]

    @property
    def rationale(self) -> str:
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return "approved: " + "; ".join(c.detail for c in self.checks)
        return "rejected: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)


def validate(view: SignalView, opinions: Sequence[Opinion], policy: ValidationPolicy) -> Assessment:
    """Apply the validation rules to the analysts' opinions (pure)."""
    checks: list[Check] = []
    if view.direction == 0:
        checks.append(Check("direction", False, "only LONG and SHORT signals can be approved"))
        return Assessment(view, tuple(opinions), False, 0.0, tuple(checks))
    voting = [o for o in opinions if o.stance is not Stance.ABSTAIN]
    agreeing = [o for o in voting if o.stance.sign == view.direction]
    against = [o for o in voting if o.stance.sign == -view.direction]
    quorum = len(agreeing) >= policy.min_agreeing_votes and len(agreeing) > len(against)
    checks.append(
        Check(
            "quorum",
            quorum,
            f"{len(agreeing)} of {len(voting)} voting analysts agree, {len(against)} against "
            f"(need {policy.min_agreeing_votes})",
        )
    )
    confidence = sum(o.confidence for o in agreeing) / len(agreeing) if agreeing else 0.0
    checks.append(
        Check(
            "confidence",
            confidence >= policy.min_confidence,
            f"ensemble confidence {confidence:.2f} (minimum {policy.min_confidence:g})",
        )
    )
    if policy.require_trend_agreement:
        trend = view.trend
        checks.append(
            Check(
                "trend",
                trend == view.direction,
                "trend unknown" if trend is None else f"trend {trend:+d} vs direction {view.direction:+d}",
            )
        )
    rr = view.risk_reward()
    checks.append(
        Check(
            "risk_reward",
            rr is not None and rr >= policy.min_risk_reward,
            "no usable stop-loss/take-profit"
            if rr is None
            else f"risk/reward {rr:.2f} (minimum {policy.min_risk_reward:g})",
        )
    )
    approved = all(c.passed for c in checks)
    return Assessment(view, tuple(opinions), approved, confidence, tuple(checks))


class Ensemble:
    """Asks every analyst concurrently, then validates."""

    def __init__(self, analysts: Sequence[Analyst], policy: ValidationPolicy) -> None:
        names = [a.name for a in analysts]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate analyst names: {names}")
        self.analysts = tuple(analysts)
        self.policy = policy

    async def opinions(self, view: SignalView) -> list[Opinion]:
        results = await asyncio.gather(*(a.assess(view) for a in self.analysts), return_exceptions=True)
        out: list[Opinion] = []
        for analyst, result in zip(self.analysts, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                out.append(Opinion.abstain(analyst.name, f"analyst failed: {type(result).__name__}"))
            else:
                out.append(result)
        return out

    async def assess(self, view: SignalView) -> Assessment:
        return validate(view, await self.opinions(view), self.policy)
