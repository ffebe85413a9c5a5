"""A handler for the runner's command-line test: notes each invocation in $PROBE_OUT, slowly."""

from __future__ import annotations

import os
import time
from typing import Any

from aipx.msk import records_of


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    offsets = [r.offset for r in records_of(event)]
    with open(os.environ["PROBE_OUT"], "a") as out:
        out.write(f"start {offsets}\n")
        out.flush()
        time.sleep(1.5)  # long enough for the test to send SIGTERM while this batch is in flight
        out.write(f"end {offsets}\n")
    return {"batchItemFailures": []}
