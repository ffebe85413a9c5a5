"""Port checks: is a port free, and if not, which process holds it (best effort, from /proc)."""

from __future__ import annotations

import errno
import os
import random
import socket
from dataclasses import dataclass
from pathlib import Path

from aipx_stack.config import PORT_ENV
from aipx_stack.errors import PortConflictError


@dataclass(frozen=True)
class PortHolder:
    """A process listening on a port."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (for test/bench processes that need their own ports)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# Below Linux's default ephemeral range (32768-60999): no outgoing connection takes a local port here, so a
# block found free stays free until its process binds it.
_BLOCK_RANGE = (30000, 32700)


def free_port_block(count: int, host: str = "0.0.0.0") -> int:
    """The first of `count` consecutive ports that are all free now, below the OS's ephemeral range (for a
    process group that numbers its ports from one base, like the platform's four runners)."""
    low, high = _BLOCK_RANGE
    pick = random.SystemRandom()
    for _ in range(500):
        base = pick.randrange(low, high - count)
        if not any(port_in_use(base + i, host) for i in range(count)):
            return base
    raise PortConflictError(f"no {count} consecutive free ports between {low} and {high}")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when binding `host:port` fails because something already uses it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR ignores our own old connections in TIME_WAIT but not a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def process_command(pid: int) -> str:
    """The command line of `pid` ('' when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def find_port_holder(port: int) -> PortHolder | None:
    """The process listening on `port`, when /proc lets us see it."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    pid = int(entry.name)
                    command = process_command(pid)
                    if len(command) > 240:  # keep the program and its last arguments (java main class)
                        command = f"{command[:80]} ... {command[-140:]}"
                    return PortHolder(pid=pid, command=command)
            except OSError:
                continue
    return None


def check_port_free(
    component: str, port: int, *, host: str = "127.0.0.1", port_name: str | None = None
) -> None:
    """Raise PortConflictError (naming the holder and the variable to change) when `port` is taken."""
    if not port_in_use(port, host):
        return
    holder = find_port_holder(port)
    who = str(holder) if holder else "another process (not visible from here)"
    var = PORT_ENV.get(port_name or component, f"AIPX_STACK_{(port_name or component).upper()}_PORT")
    raise PortConflictError(
        f"{component}: port {host}:{port} is already in use by {who}, which is not this stack's "
        f"{component}. Stop that process, or give the stack another port with {var}=<free port>."
    )
