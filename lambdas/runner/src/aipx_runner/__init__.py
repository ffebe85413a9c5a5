"""Local emulator of the MSK event source mappings of the function manifest (`python -m aipx_runner`).

Reads each function's event sources from `aipx.functions.manifest()` (the file Terraform also reads), consumes
with one fixed consumer group per event source, builds the exact MSK event (`aipx.msk.build_event`), invokes
the function's handler in a worker thread (or, `--isolation process`, in an instance process that a crash
ends and a timeout kills, restarted for the next invocation: `aipx_runner.instance`) and applies the partial
batch response: commit below the lowest failed offset per partition, seek back, retry with backoff
(bisecting whole-batch failures), then send what still fails to the on-failure topic. SIGTERM/SIGINT finish
the in-flight batch, commit and close.
"""

from aipx_runner.config import RunnerConfig, SourceConfig
from aipx_runner.domain import Backoff
from aipx_runner.runner import EventSourcePoller, Runner

__all__ = ["Backoff", "EventSourcePoller", "Runner", "RunnerConfig", "SourceConfig"]
