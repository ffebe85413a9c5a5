"""CPU time and CPU placement of processes, for benchmarks that report CPU per message or request and keep
the process under test on cores of its own (Linux /proc, sched_setaffinity)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds consumed so far by the processes (all their threads); 0 for a gone one."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _threads_and_children(pids: Iterable[int]) -> list[int]:
    """Every thread of the processes and of their descendant processes (PostgreSQL's backends, say)."""
    wanted = set(pids)
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in wanted and pid not in wanted}
        wanted |= more
        grew = bool(more)
    threads: list[int] = []
    for pid in wanted:
        try:
            threads += [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            continue
    return threads


def pin(pids: Iterable[int], cpus: set[int]) -> list[tuple[int, set[int]]]:
    """Confine the processes (all their threads, and their descendants) to `cpus`; new threads and children
    inherit it. Returns what to hand to `unpin` to restore the previous placement."""
    saved: list[tuple[int, set[int]]] = []
    for tid in _threads_and_children(pids):
        try:
            before = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
        except OSError:  # gone meanwhile
            continue
        saved.append((tid, before))
    return saved


def unpin(saved: Iterable[tuple[int, set[int]]]) -> None:
    """Undo `pin` (threads gone meanwhile are skipped)."""
    for tid, cpus in saved:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            continue
