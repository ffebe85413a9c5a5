"""An S3-compatible server: moto's server mode (from PyPI), objects kept in memory."""

from __future__ import annotations

import sys
from pathlib import Path

from aipx_stack.native.base import NativeComponent
from aipx_stack.ports import process_command
from aipx_stack.probes import probe_http
from aipx_stack.procs import read_pid, spawn


class S3Component(NativeComponent):
    name = "s3"

    @property
    def endpoint(self) -> str:
        return self.endpoints.s3_endpoint_url

    @property
    def pid_file(self) -> Path:
        return self.dir / "s3.pid"

    def log_files(self) -> list[Path]:
        return [self.dir / "s3.log"]

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        command = process_command(pid)
        return pid if not command or "moto.server" in command else None

    def launch(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "moto.server", "-H", self.config.host, "-p", str(self.config.s3_port)]
        proc = spawn(argv, log_file=self.dir / "s3.log", cwd=self.dir)
        self.pid_file.write_text(f"{proc.pid}\n")

    def probe(self) -> str | None:
        return probe_http(f"{self.endpoints.s3_endpoint_url}/moto-api/")

    def stop_process(self, pid: int) -> None:
        super().stop_process(pid)
        self.pid_file.unlink(missing_ok=True)
