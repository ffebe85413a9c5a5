"""PostgreSQL from the system packages, in a data dir of the stack's own, on its own port."""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
from pathlib import Path

from aipx_stack.config import POSTGRES_PASSWORD, POSTGRES_USER
from aipx_stack.errors import MissingDependencyError, StackError
from aipx_stack.install import is_root, postgres_bindir
from aipx_stack.native.base import NativeComponent
from aipx_stack.probes import probe_postgres
from aipx_stack.procs import read_pid, run, terminate

log = logging.getLogger(__name__)

# Tuned for tests on a small machine, but commits stay durable: the OMS benchmarks measure real
# fsync'd commits, so fsync and synchronous_commit keep their safe defaults.
SERVER_SETTINGS = """
# --- aipx-stack settings ---
listen_addresses = '{host}'
max_connections = 200
shared_buffers = 128MB
fsync = on
synchronous_commit = on
full_page_writes = on
unix_socket_directories = '{run_dir}'
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
"""


class PostgresComponent(NativeComponent):
    name = "postgres"

    @property
    def endpoint(self) -> str:
        return f"{self.config.host}:{self.config.postgres_port}"

    @property
    def home(self) -> Path:
        """Where data, log and socket live: the state dir, or a fallback the postgres user can reach."""
        pointer = self.dir / "home"
        if pointer.is_file():
            return Path(pointer.read_text().strip())
        return self.dir

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    def log_files(self) -> list[Path]:
        return [self.log_file]

    def admin_dsn(self) -> str:
        return self.endpoints.postgres_dsn_for("postgres")

    def _user(self) -> str | None:
        """The account the server runs as: `postgres` when we are root (it refuses to run as root)."""
        if not is_root():
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise MissingDependencyError(
                "PostgreSQL cannot run as root and there is no `postgres` system user; "
                "install Debian's postgresql package (apt-get install -y postgresql) which creates it"
            ) from None
        return "postgres"

    def _chown(self, path: Path, user: str | None) -> None:
        if user is None:
            return
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def _check_version(self, bindir: Path) -> None:
        version_file = self.data_dir / "PG_VERSION"
        server_major = bindir.parent.name
        if version_file.exists() and server_major.isdigit():
            data_major = version_file.read_text().strip()
            if data_major != server_major:
                raise StackError(
                    f"PostgreSQL data dir {self.data_dir} was created by PostgreSQL {data_major} but the "
                    f"installed server is {server_major}: remove {self.data_dir.parent} (its databases are "
                    f"lost) or install postgresql-{data_major}"
                )

    def _choose_home(self, user: str | None) -> None:
        """Move to a fallback home when the server account cannot reach the state dir (e.g. under /root)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if user is None or (self.dir / "home").is_file():
            return
        self._chown(self.dir, user)
        try:
            run(["test", "-w", str(self.dir)], what="checking access", user=user, timeout_s=30)
        except StackError:
            digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]
            fallback = Path("/var/tmp/aipx-stack") / digest / "postgres"
            fallback.mkdir(parents=True, exist_ok=True)
            Path("/var/tmp/aipx-stack").chmod(0o755)
            fallback.parent.chmod(0o755)
            log.warning(
                "user %s cannot reach %s (a parent directory is private): keeping PostgreSQL's data in %s",
                user,
                self.dir,
                fallback,
            )
            (self.dir / "home").write_text(f"{fallback}\n")

    def launch(self) -> None:
        bindir = postgres_bindir()
        user = self._user()
        self._choose_home(user)
        run_dir = self.home / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        self._check_version(bindir)
        if not (self.data_dir / "PG_VERSION").exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir.mkdir(parents=True)
            pwfile = self.home / "initdb.pw"
            pwfile.write_text(POSTGRES_PASSWORD + "\n")
            self._chown(self.home, user)
            try:
                run(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        POSTGRES_USER,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C",
                        "--no-sync",
                    ],
                    what="initdb",
                    user=user,
                    timeout_s=180,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write(SERVER_SETTINGS.format(host=self.config.host, run_dir=run_dir))
        self.log_file.touch()
        self._chown(self.home, user)
        # pg_ctl -w returns once the server accepts connections; the port is passed at each start so
        # AIPX_STACK_POSTGRES_PORT can change without re-initialising.
        run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(self.config.start_timeout_s)),
                "-o",
                f"-p {self.config.postgres_port}",
            ],
            what="pg_ctl start",
            user=user,
            timeout_s=self.config.start_timeout_s + 10,
        )

    def probe(self) -> str | None:
        return probe_postgres(self.admin_dsn())

    def stop_process(self, pid: int) -> None:
        try:
            bindir = postgres_bindir()
            run(
                [
                    str(bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(self.config.stop_timeout_s)),
                ],
                what="pg_ctl stop",
                user=self._user(),
                timeout_s=self.config.stop_timeout_s + 10,
            )
        except StackError:
            terminate(pid, timeout_s=self.config.stop_timeout_s, name=self.name)
