"""Fault injection: which frames to drop or duplicate, how many malformed frames to send, stalls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import cycle
from typing import Any

import orjson


@dataclass(slots=True)
class Rule:
    """Applies to the next `count` frames whose venue/stream match (None matches anything).

    `stream` matches as a substring of the stream/topic name ("depth", "btcusdt@trade", "orderbook.50").
    """

    count: int
    venue: str | None = None
    stream: str | None = None

    def matches(self, venue: str, stream: str) -> bool:
        return (self.venue is None or self.venue == venue) and (self.stream is None or self.stream in stream)


def malformed_frames(venue: str) -> cycle[str]:
    """An endless cycle of broken frames of different kinds, in the venue's dialect where that matters."""
    data: list[dict[str, Any]]
    if venue == "binance":
        data = [
            {"stream": "btcusdt@trade", "data": {"e": "trade", "s": "BTCUSDT", "t": "x", "p": "1", "q": "1"}},
            {
                "stream": "btcusdt@trade",
                "data": {
                    "e": "trade",
                    "E": 1,
                    "s": "BTCUSDT",
                    "t": 1,
                    "p": "NaN",
                    "q": "1",
                    "T": 1,
                    "m": True,
                },
            },
            {"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "s": "BTCUSDT", "U": 5, "u": 1}},
            {"stream": "x@mystery", "data": {"e": "mystery"}},
            {
                "stream": "zzzusdt@trade",
                "data": {"e": "trade", "E": 1, "s": "ZZZUSDT", "t": 1, "p": "1", "q": "1", "T": 1, "m": True},
            },
        ]
    else:
        data = [
            {"topic": "publicTrade.BTCUSDT", "ts": 1, "data": [{"p": "1"}]},
            {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1, "data": {"s": "BTCUSDT", "u": -3}},
            {
                "topic": "orderbook.50.BTCUSDT",
                "type": "weird",
                "ts": 1,
                "data": {"s": "BTCUSDT", "b": [], "a": [], "u": 1},
            },
            {"topic": "mystery.BTCUSDT", "ts": 1, "data": {}},
            {"nothing": "useful"},
        ]
    frames = ["{not json", "[1, 2, 3]", '"just a string"', "", *(orjson.dumps(d).decode() for d in data)]
    return cycle(frames)


class Faults:
    """The pending faults; the simulator consults it on every frame it publishes."""

    def __init__(self) -> None:
        self.drops: list[Rule] = []
        self.duplicates: list[Rule] = []
        self.malformed: dict[str, int] = {}
        self.stalled_until = 0.0
        self.snapshot_failures = 0
        self.accept_then_drop: dict[str | None, tuple[int, float]] = {}
        """venue (None: any) -> (connections left to drop, seconds after accepting)."""
        self.active = False

    def _refresh(self) -> None:
        self.active = bool(self.drops or self.duplicates or any(self.malformed.values()))

    def drop(self, count: int, venue: str | None = None, stream: str | None = None) -> None:
        """Drop the next `count` matching frames (for every client): a sequence gap downstream."""
        self.drops.append(Rule(count, venue, stream))
        self._refresh()

    def duplicate(self, count: int, venue: str | None = None, stream: str | None = None) -> None:
        """Send the next `count` matching frames twice."""
        self.duplicates.append(Rule(count, venue, stream))
        self._refresh()

    def add_malformed(self, count: int, venue: str) -> None:
        """Send `count` malformed frames to every client of `venue` (interleaved with data)."""
        self.malformed[venue] = self.malformed.get(venue, 0) + count
        self._refresh()

    def stall(self, seconds: float) -> None:
        """Stop publishing anything for `seconds` (connections stay open)."""
        self.stalled_until = max(self.stalled_until, time.monotonic() + seconds)

    def stalled(self) -> float:
        """Seconds of stall left (0 if none)."""
        return max(0.0, self.stalled_until - time.monotonic())

    def drop_after_accept(self, count: int, after_s: float, venue: str | None = None) -> None:
        """Accept the next `count` connections (of `venue`), then drop each after `after_s` seconds."""
        self.accept_then_drop[venue] = (count, after_s)

    def take_accept_then_drop(self, venue: str) -> float | None:
        """Seconds after which to drop a connection of `venue` just accepted, or None to keep it."""
        for key in (venue, None):
            left, after_s = self.accept_then_drop.get(key, (0, 0.0))
            if left > 0:
                self.accept_then_drop[key] = (left - 1, after_s)
                return after_s
        return None

    def copies(self, venue: str, stream: str) -> int:
        """How many times to send a frame: 0 (drop), 1, or 2 (duplicate)."""
        for rules, result in ((self.drops, 0), (self.duplicates, 2)):
            for rule in rules:
                if rule.matches(venue, stream):
                    rule.count -= 1
                    if rule.count <= 0:
                        rules.remove(rule)
                        self._refresh()
                    return result
        return 1

    def take_malformed(self, venue: str) -> int:
        count = self.malformed.pop(venue, 0)
        self._refresh()
        return count

    def clear(self) -> None:
        self.drops.clear()
        self.duplicates.clear()
        self.malformed.clear()
        self.stalled_until = 0.0
        self.snapshot_failures = 0
        self.accept_then_drop.clear()
        self._refresh()
