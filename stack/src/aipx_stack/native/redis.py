"""Redis from the system package, daemonized on the stack's own port, without persistence."""

from __future__ import annotations

import time
from pathlib import Path

from aipx_stack.errors import ComponentStartError
from aipx_stack.install import require_program
from aipx_stack.native.base import NativeComponent
from aipx_stack.ports import process_command
from aipx_stack.probes import probe_redis
from aipx_stack.procs import read_pid, run


class RedisComponent(NativeComponent):
    name = "redis"

    @property
    def endpoint(self) -> str:
        return self.endpoints.redis_url

    @property
    def pid_file(self) -> Path:
        return self.dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    def log_files(self) -> list[Path]:
        return [self.log_file]

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        command = process_command(pid)
        return pid if not command or "redis" in command else None

    def config_text(self) -> str:
        data = self.dir / "data"
        return (
            f"bind {self.config.host}\n"
            f"port {self.config.redis_port}\n"
            "protected-mode yes\n"
            "daemonize yes\n"
            f"pidfile {self.pid_file}\n"
            f"logfile {self.log_file}\n"
            f"dir {data}\n"
            'save ""\n'
            "appendonly no\n"
            "maxmemory 512mb\n"
            "maxmemory-policy noeviction\n"
        )

    def launch(self) -> None:
        server = require_program("redis-server", package="redis-server", needed_for="Redis")
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(self.config_text())
        self.pid_file.unlink(missing_ok=True)
        # daemonize: redis-server forks, detaches (setsid) and its child writes the pid file a moment later.
        run([str(server), str(conf)], what="redis-server", timeout_s=30)
        deadline = time.monotonic() + 15.0
        while self.pid() is None:
            if time.monotonic() > deadline:
                raise ComponentStartError(f"redis-server wrote no pid file within 15s.\n{self.log_tail()}")
            time.sleep(0.05)

    def probe(self) -> str | None:
        return probe_redis(self.endpoints.redis_url)
