"""A handler that hangs (for the instance lifeline test): it never returns."""

from __future__ import annotations

import time
from typing import Any


def handler(event: Any, context: Any) -> Any:
    time.sleep(3600)
