"""A kit handler for process-isolation tests: notes each record it starts in $PROBE_OUT (with its pid), then
kills its own process (SIGKILL, as an out-of-memory kill would) on the record `poison`, or hangs past the
function's timeout on `hang`. Configured from PROBE_* variables (the test's fresh topics and names)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from aipx.lambda_kit import KafkaBatch, MskRecord
from aipx.topics import TRADING_SIGNALS
from aipx.v1.signals_pb2 import TradingSignal
from aws_lambda_powertools import Logger

FUNCTION = os.environ["PROBE_FUNCTION"]
logger = Logger(service=FUNCTION)
batch = KafkaBatch(FUNCTION, logger=logger, max_retries=int(os.environ["PROBE_MAX_RETRIES"]))


@batch.on(TRADING_SIGNALS, TradingSignal)
def on_signal(signal_: TradingSignal, record: MskRecord) -> None:
    with open(os.environ["PROBE_OUT"], "a") as out:
        out.write(f"{os.getpid()} {record.offset} {signal_.signal_id}\n")
    if signal_.signal_id == "poison":
        os.kill(os.getpid(), signal.SIGKILL)
    if signal_.signal_id == "hang":
        time.sleep(3600)


batch.alias(os.environ["PROBE_TOPIC"], TRADING_SIGNALS, dlq=os.environ["PROBE_DLQ"])


def handler(event: dict[str, Any], context: Any) -> Any:
    return batch.process(event, context)
