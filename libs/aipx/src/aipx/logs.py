"""Structured JSON logging on the standard library, with context (request id, trace id) from contextvars.

Call `configure_logging("oms")` once at process start; use `logging.getLogger(__name__)` everywhere and
`bind(request_id=...)` to attach context to every record logged in the current task.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from aipx.settings import LogSettings

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "aipx_log_context", default=None
)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Attach fields to every log record emitted in this context (task-local)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def configure_logging(service: str, settings: LogSettings | None = None) -> None:
    """Route all logging to stdout as one JSON object per line (or readable text with format=console)."""
    settings = settings or LogSettings()
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter(service))
    formatter: logging.Formatter
    if settings.format == "json":
        formatter = JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(service)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("aiokafka", "kafka", "botocore", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class SampledLogger:
    """Logs one record per `every` occurrences of a noisy condition (e.g. malformed frames), with a count."""

    def __init__(self, logger: logging.Logger, every: int = 1000) -> None:
        self.logger = logger
        self.every = every
        self.count = 0

    def warning(self, msg: str, *args: object, **extra: Any) -> None:
        self.count += 1
        if self.count == 1 or self.count % self.every == 0:
            self.logger.warning(msg + " (occurrence %d)", *args, self.count, extra=extra)
