"""Chat clients for the LLM analysts on the official OpenAI and Anthropic SDKs (base URLs configurable)."""

from __future__ import annotations

import anthropic
import openai


class OpenAiChat:
    """OpenAI chat completions (JSON object response format, temperature 0)."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 20.0,
        max_retries: int = 1,
    ) -> None:
        self.model = model
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def complete(self, system: str, user: str) -> str:
        response = await self._client.chat.completions.create(
            model=self.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            temperature=0,
            max_tokens=300,
            response_format={"type": "json_object"},
        )
        return response.choices[0].message.content or ""


class AnthropicChat:
    """Anthropic messages API."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 20.0,
        max_retries: int = 1,
    ) -> None:
        self.model = model
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def complete(self, system: str, user: str) -> str:
        response = await self._client.messages.create(
            model=self.model,
            system=system,
            messages=[{"role": "user", "content": user}],
            max_tokens=300,
        )
        return "".join(block.text for block in response.content if block.type == "text")
