"""The analyst interface: a name and one async method from a signal to an opinion."""

from __future__ import annotations

from typing import Protocol

from aipx_cognitive.domain.model import Opinion, SignalView


class Analyst(Protocol):
    """Votes on a signal. Must not raise for a well-formed signal: an analyst that cannot vote abstains."""

    @property
    def name(self) -> str: ...

    async def assess(self, view: SignalView) -> Opinion: ...
