"""Errors of the ingestion domain."""

from __future__ import annotations


class MalformedFrameError(ValueError):
    """A venue frame that cannot be understood (bad JSON, missing or invalid fields, unknown type).

    `reason` is a short, low-cardinality label (used as a metric label); the message says what was wrong.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
