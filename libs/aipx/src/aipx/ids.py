"""Identifiers and clocks shared by every component."""

from __future__ import annotations

import time
import uuid

# Namespace for deterministic ids (uuid5): same inputs, same id, across processes and replays.
AIPX_NAMESPACE = uuid.UUID("6f1c9a52-3b7e-5d0c-9a8e-2f4b6c8d0e1a")


def new_event_id() -> str:
    """A random, globally unique event id (UUID4 text)."""
    return str(uuid.uuid4())


def deterministic_id(*parts: object) -> str:
    """A stable id derived from `parts` (UUID5 over their '|'-joined text)."""
    return str(uuid.uuid5(AIPX_NAMESPACE, "|".join(str(p) for p in parts)))


def now_ns() -> int:
    """Wall-clock time, unix epoch nanoseconds."""
    return time.time_ns()
