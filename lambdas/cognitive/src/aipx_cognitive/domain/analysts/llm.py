"""LLM analysts: a language model reads the signal summary and answers with a JSON vote.

The model is asked for exactly {"vote": "LONG"|"SHORT"|"NEUTRAL", "confidence": 0..1, "rationale": "..."}.
Anything else (no JSON, unknown vote, confidence out of range) makes the analyst ABSTAIN, as does a missing
API key (no client), a timeout or an API error: an LLM never blocks or fails a decision.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Protocol

from aipx_cognitive.domain.model import Opinion, SignalView, Stance

SYSTEM_PROMPT = (
    "You are a cautious crypto trading analyst reviewing a signal produced by a technical strategy. "
    "Judge whether entering the trade now is sound, considering the indicators, the trend, the protective "
    "levels and the risk/reward. Answer with a single JSON object and nothing else: "
    '{"vote": "LONG" | "SHORT" | "NEUTRAL", "confidence": <number between 0 and 1>, '
    '"rationale": "<one or two sentences>"}.'
)

MAX_RATIONALE = 500
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class ChatClient(Protocol):
    """One round of chat with a model: a system prompt and a user message in, the reply's text out."""

    async def complete(self, system: str, user: str) -> str: ...


class UnusableReplyError(ValueError):
    """The model's reply is not the JSON vote asked for."""


def user_prompt(view: SignalView) -> str:
    """The user message: the signal summary as JSON."""
    return "Signal to review:\n" + json.dumps(view.summary(), sort_keys=True)


def parse_reply(analyst: str, text: str) -> Opinion:
    """The model's reply as an Opinion; UnusableReplyError saying what is wrong."""
    match = _JSON_OBJECT.search(text)
    if match is None:
        raise UnusableReplyError("no JSON object in the reply")
    try:
        data = json.loads(match.group(0), strict=False)  # tolerate raw newlines inside strings
    except json.JSONDecodeError as exc:
        raise UnusableReplyError(f"invalid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise UnusableReplyError("the reply is not a JSON object")
    vote = str(data.get("vote", "")).strip().upper()
    if vote not in ("LONG", "SHORT", "NEUTRAL"):
        raise UnusableReplyError(f"unknown vote {vote!r}")
    confidence = data.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise UnusableReplyError(f"confidence {confidence!r} is not a number in [0, 1]")
    rationale = " ".join(str(data.get("rationale", "")).split())[:MAX_RATIONALE]
    return Opinion(analyst, Stance(vote), float(confidence), rationale or "(no rationale given)")


@dataclass(slots=True)
class LlmAnalyst:
    """An analyst backed by a chat model; `client` None means no API key is configured."""

    name: str
    client: ChatClient | None
    timeout_s: float = 20.0

    async def assess(self, view: SignalView) -> Opinion:
        if self.client is None:
            return Opinion.abstain(self.name, "no API key configured")
        if view.direction == 0:
            return Opinion.abstain(self.name, "only LONG and SHORT signals are assessed")
        try:
            async with asyncio.timeout(self.timeout_s):
                text = await self.client.complete(SYSTEM_PROMPT, user_prompt(view))
        except TimeoutError:
            return Opinion.abstain(self.name, f"no answer within {self.timeout_s:g}s")
        except Exception as exc:  # any API/transport failure: abstain, naming only the error type and status
            status = getattr(exc, "status_code", None)
            detail = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")
            return Opinion.abstain(self.name, f"model call failed: {detail}")
        try:
            return parse_reply(self.name, text)
        except UnusableReplyError as exc:
            return Opinion.abstain(self.name, f"unusable reply: {exc}")
