"""The replay ledger: a JSON-lines file naming every record already replayed, so that a replay run twice
(or interrupted and run again) sends each record once. Consumers also de-duplicate on aipx-event-id, which a
replay keeps, so a replay from another machine (another ledger) is still harmless."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

DEFAULT_LEDGER = Path(".aipx") / "ops" / "replays.jsonl"


class Ledger:
    """What was replayed (source coordinates -> where it went), appended to as records are replayed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: set[str] = set()
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    self._done.add(str(json.loads(line)["source"]))
                except (ValueError, KeyError, TypeError):
                    raise ValueError(f"{path}:{number}: not a ledger entry: {line[:80]!r}") from None

    def replayed(self, source: str) -> bool:
        return source in self._done

    def record(self, source: str, **facts: Any) -> None:
        """Append one replayed record (written at once: an interrupted run keeps what it did)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"source": source, "replayed_at_ns": time.time_ns(), **facts}
        with self.path.open("a") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")
        self._done.add(source)
