"""Apache Kafka 4.x as one KRaft node (broker + controller) from Maven Central jars on the system Java."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from aipx_stack.config import KAFKA_POM
from aipx_stack.errors import StackError
from aipx_stack.install import require_java, require_program
from aipx_stack.native.base import NativeComponent
from aipx_stack.ports import process_command
from aipx_stack.probes import probe_kafka
from aipx_stack.procs import file_lock, read_pid, run, spawn

log = logging.getLogger(__name__)

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def kafka_cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 bytes, not starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def resolve_kafka_libs(cache_dir: Path, version: str, pom: Path = KAFKA_POM) -> Path:
    """The directory of Kafka `version`'s runtime jars, resolved with Maven once and reused afterwards."""
    libs = cache_dir / "kafka" / version / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if not pom.is_file():
        raise StackError(f"the Kafka pom {pom} is missing (aipx-stack must run from the AIPX workspace)")
    mvn = require_program("mvn", package="maven", needed_for="resolving the Kafka jars")
    with file_lock(libs.parent / "resolve.lock", what=f"resolving Kafka {version}"):
        if marker.exists():
            return libs
        staging = libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("resolving Kafka %s jars from Maven Central into %s (first run only)", version, libs)
        run(
            [
                str(mvn),
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
                f"-Dkafka.version={version}",
            ],
            what=f"resolving Kafka {version} with Maven",
            timeout_s=900,
        )
        if not (staging / f"kafka_2.13-{version}.jar").is_file():
            raise StackError(f"Maven finished but {staging} has no kafka_2.13-{version}.jar")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        marker.touch()
    return libs


def _archive_usable(java: Path, archive: Path) -> bool:
    """True when a JVM maps `archive` and starts (a damaged dynamic archive can crash JDK 17 outright)."""
    try:
        done = subprocess.run(
            [str(java), f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-version"],
            cwd=tempfile.gettempdir(),  # a crashing probe leaves its hs_err_pid*.log there, not in the repo
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "fatal error" not in done.stdout + done.stderr


class KafkaComponent(NativeComponent):
    name = "kafka"

    @property
    def endpoint(self) -> str:
        return self.endpoints.kafka_bootstrap

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def properties_file(self) -> Path:
        return self.dir / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.dir / "kafka.pid"

    def log_files(self) -> list[Path]:
        return [self.dir / "server.log", self.dir / "kafka.out"]

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        # Guard against pid reuse: the process must be our broker.
        command = process_command(pid)
        if command and (MAIN_CLASS not in command or str(self.properties_file) not in command):
            return None
        return pid

    def server_properties(self) -> str:
        c = self.config
        controller = f"{c.host}:{c.kafka_controller_port}"
        props = {
            "node.id": "1",
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.bootstrap.servers": controller,
            "log.dirs": str(self.data_dir),
            # Single node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Topics come from the catalogue (or tests' new_topic), never from a typo in a producer.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            # Fast startup and quick consumer-group joins for tests.
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.check.interval.ms": "60000",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def log4j2_properties(self) -> str:
        return (
            "status = warn\n"
            "appender.file.type = RollingFile\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.dir / 'server.log'}\n"
            f"appender.file.filePattern = {self.dir / 'server.log'}.%i\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "appender.file.policies.type = Policies\n"
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy\n"
            "appender.file.policies.size.size = 50MB\n"
            "appender.file.strategy.type = DefaultRolloverStrategy\n"
            "appender.file.strategy.max = 2\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.controller.name = kafka.controller\nlogger.controller.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        )

    def _format_if_needed(self, java: Path, classpath: str) -> None:
        stamp_file = self.dir / "format.json"
        stamp = {"controller": f"{self.config.host}:{self.config.kafka_controller_port}"}
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted:
            try:
                previous = json.loads(stamp_file.read_text())
            except (OSError, ValueError):
                previous = None
            if previous == stamp:
                return
            # The KRaft voter set records the controller endpoint: a new one needs fresh metadata.
            log.warning(
                "Kafka controller endpoint changed (%s -> %s): re-formatting %s (topics are lost)",
                previous,
                stamp,
                self.data_dir,
            )
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run(
            [
                str(java),
                "-cp",
                classpath,
                STORAGE_TOOL,
                "format",
                "--standalone",
                "-t",
                kafka_cluster_id(),
                "-c",
                str(self.properties_file),
            ],
            what="formatting the Kafka KRaft storage",
            timeout_s=120,
        )
        stamp_file.write_text(json.dumps(stamp))

    def launch(self) -> None:
        java = require_java(17)
        libs = resolve_kafka_libs(self.config.cache_dir, self.config.kafka_version)
        classpath = f"{libs}/*"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.server_properties())
        log4j = self.dir / "log4j2.properties"
        log4j.write_text(self.log4j2_properties())
        self._format_if_needed(java, classpath)
        heap = self.config.kafka_heap
        argv = [
            str(java),
            *self._class_data_sharing(java, libs),
            f"-Xmx{heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            classpath,
            MAIN_CLASS,
            str(self.properties_file),
        ]
        proc = spawn(argv, log_file=self.dir / "kafka.out", cwd=self.dir)
        self.pid_file.write_text(f"{proc.pid}\n")

    @property
    def _pending_archive(self) -> Path:
        return self.dir / "kafka.jsa.pending"

    def _class_data_sharing(self, java: Path, libs: Path) -> list[str]:
        """JVM flags for AppCDS: an archive of the broker's classes cuts its start time by about a third.

        The first start records the archive when the broker exits (stop moves it into the jar cache);
        later starts map it. A stale archive (other JDK build) is ignored by the JVM, which then starts
        normally (-Xshare:auto).
        """
        archive = self._archive_path(java, libs)
        if archive.is_file():
            if _archive_usable(java, archive):
                return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
            log.warning("discarding the unusable Kafka class-data archive %s", archive)
            archive.unlink(missing_ok=True)
        self._pending_archive.unlink(missing_ok=True)
        return [f"-XX:ArchiveClassesAtExit={self._pending_archive}"]

    def _archive_path(self, java: Path, libs: Path) -> Path:
        return libs.parent / f"kafka-cds-{java.resolve().parent.parent.name}.jsa"

    def _keep_archive(self) -> None:
        pending = self._pending_archive
        if not pending.is_file() or pending.stat().st_size == 0:
            return
        try:
            java = require_java(17)
            libs = resolve_kafka_libs(self.config.cache_dir, self.config.kafka_version)
            target = self._archive_path(java, libs)
            staging = target.with_name(f"{target.name}.{os.getpid()}")
            shutil.copyfile(pending, staging)
            if not _archive_usable(java, staging):
                staging.unlink(missing_ok=True)
                raise StackError("the recorded archive does not load")
            os.replace(staging, target)
            log.info("saved the Kafka class-data archive %s for faster starts", target)
        except (OSError, StackError) as exc:
            log.warning("could not keep the Kafka class-data archive: %s", exc)
        finally:
            pending.unlink(missing_ok=True)

    def probe(self) -> str | None:
        return probe_kafka(self.endpoints.kafka_bootstrap)

    def stop_process(self, pid: int) -> None:
        super().stop_process(pid)
        self.pid_file.unlink(missing_ok=True)
        self._keep_archive()
