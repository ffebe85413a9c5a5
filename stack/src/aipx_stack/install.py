"""Finding the system programs the native stack needs, and installing them with apt when we are root."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

from aipx_stack.errors import MissingDependencyError, StackError
from aipx_stack.procs import run

log = logging.getLogger(__name__)

_apt_lock = threading.Lock()
_apt_updated = False


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(packages: list[str], *, needed_for: str) -> None:
    """Install Debian packages (root only); otherwise a MissingDependencyError saying what to install."""
    global _apt_updated
    command = f"apt-get install -y {' '.join(packages)}"
    if not is_root() or shutil.which("apt-get") is None:
        raise MissingDependencyError(
            f"{needed_for} needs the Debian package(s) {', '.join(packages)}, which are not installed. "
            f"Install them with: sudo apt-get update && sudo {command}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _apt_lock:
        log.info("installing %s with apt-get (needed for %s)", " ".join(packages), needed_for)
        try:
            if not _apt_updated:
                run(["apt-get", "update", "-q"], what="apt-get update", env=env, timeout_s=600)
                _apt_updated = True
            run(
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                what=f"installing {' '.join(packages)}",
                env=env,
                timeout_s=900,
            )
        except StackError as exc:
            raise MissingDependencyError(
                f"{needed_for}: could not install {', '.join(packages)}: {exc}"
            ) from exc


def require_program(name: str, *, package: str, needed_for: str, extra_dirs: tuple[Path, ...] = ()) -> Path:
    """The path of program `name`, installing `package` first when missing (as root)."""
    for directory in extra_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        apt_install([package], needed_for=needed_for)
        found = shutil.which(name)
    if found is None:
        raise MissingDependencyError(
            f"{needed_for}: `{name}` is still not on PATH after installing {package}"
        )
    return Path(found)


def java_major(java: Path) -> int:
    """The major version of a `java` binary (17 for 17.0.15)."""
    done = subprocess.run([str(java), "-version"], capture_output=True, text=True, check=False, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        raise StackError(f"cannot tell the version of {java}: {done.stderr.strip()[:300]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java(minimum: int = 17) -> Path:
    """A java binary of at least `minimum` (JAVA_HOME first, then PATH; installs a JRE as root)."""
    java_home = os.environ.get("JAVA_HOME")
    dirs = (Path(java_home) / "bin",) if java_home else ()
    java = require_program(
        "java", package=f"openjdk-{minimum}-jre-headless", needed_for="Kafka", extra_dirs=dirs
    )
    major = java_major(java)
    if major < minimum:
        raise MissingDependencyError(
            f"Kafka needs Java {minimum}+, but {java} is Java {major}. "
            f"Install openjdk-{minimum}-jre-headless "
            f"(apt-get install -y openjdk-{minimum}-jre-headless) and point JAVA_HOME at it."
        )
    return java


def postgres_bindir() -> Path:
    """The bin directory of the newest installed PostgreSQL server (installs Debian's postgresql as root)."""

    def find() -> Path | None:
        versions = sorted(
            (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").is_file()),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        )
        if versions:
            return versions[-1]
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl and shutil.which("initdb"):
            return Path(pg_ctl).resolve().parent
        return None

    found = find()
    if found is None:
        apt_install(["postgresql"], needed_for="PostgreSQL")
        found = find()
    if found is None:
        raise MissingDependencyError("PostgreSQL: no pg_ctl/initdb found even after installing postgresql")
    return found


def require_chromium() -> Path:
    """A headless-capable Chromium from Debian's packages (the console's browser tests drive it)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    return require_program("chromium", package="chromium", needed_for="the console's browser tests")


def require_prometheus() -> Path:
    """Prometheus from Debian's packages (`./aipx run --prometheus` and its test)."""
    return require_program("prometheus", package="prometheus", needed_for="./aipx run --prometheus")
