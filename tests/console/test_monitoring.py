"""Monitoring configuration: the Prometheus scrape jobs cover every process that serves /metrics (as
platform.py and docker-compose.yml define them), every Grafana panel queries metrics a service defines, the
compose console is configured in a way its settings accept, and the console image is built like the others."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aipx_console.settings import ConsoleSettings
from aipx_stack.monitoring import native_config, scrape_jobs
from aipx_stack.platform import Ports, default_processes

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "ops" / "monitoring"
COMPOSE = ROOT / "docker-compose.yml"
SOURCES = [ROOT / "services", ROOT / "lambdas", ROOT / "libs" / "aipx" / "src"]
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
PROMQL_WORDS = {
    "sum", "rate", "increase", "by", "le", "histogram_quantile", "clamp_min", "max", "min", "avg", "without",
    "on", "ignoring", "count", "irate", "delta", "and", "or", "unless", "offset",
}  # fmt: skip


def defined_metrics() -> set[str]:
    """Every metric name the code defines (prometheus_client Counter/Gauge/Histogram), with the series names
    Prometheus derives from them (_total for counters; _bucket, _sum, _count for histograms)."""
    names: set[str] = set()
    pattern = re.compile(r'\b(Counter|Gauge|Histogram)\(\s*f?"([a-z_{}]+)"', re.MULTILINE)
    for base in SOURCES:
        for path in base.rglob("*.py"):
            if "/v1/" in str(path) or ".venv" in path.parts:
                continue
            for kind, raw in pattern.findall(path.read_text()):
                name = raw.replace("{ns}", "aipx_ingestion")
                if kind == "Counter":
                    names.add(name if name.endswith("_total") else f"{name}_total")
                elif kind == "Histogram":
                    names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
                else:
                    names.add(name)
    return names


def test_the_metric_scan_finds_each_services_metrics() -> None:
    names = defined_metrics()
    for expected in (
        "aipx_ingestion_gaps_total", "aipx_ingestion_stale_streams", "aipx_oms_outbox_lag_seconds",
        "aipx_oms_request_seconds_bucket", "aipx_runner_dead_lettered_total", "aipx_console_dlq_records",
        "aipx_console_consumer_lag_records",
    ):  # fmt: skip
        assert expected in names


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.stem)
def test_every_dashboard_panel_queries_metrics_a_service_emits(dashboard: Path) -> None:
    board = json.loads(dashboard.read_text())
    names = defined_metrics()
    assert board["uid"] and board["panels"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "aipx-prometheus"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            # drop label matchers, ranges, strings, grouping label lists and numbers: what is left are names
            expr = re.sub(
                r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"|\b(?:by|without)\s*\([^)]*\)|\b\d[\d.]*(?:e[-+]?\d+)?',
                "",
                target["expr"],
            )
            metrics = {w for w in re.findall(r"[a-z_][a-z0-9_]*", expr) if w not in PROMQL_WORDS}
            assert metrics, f"{dashboard.name} / {panel['title']}: no metric in {target['expr']}"
            unknown = metrics - names
            assert not unknown, (
                f"{dashboard.name} / {panel['title']}: {sorted(unknown)} emitted by no service"
            )


def test_dashboards_cover_ingestion_oms_cold_path_and_kafka_lag() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"AIPX / Ingestion", "AIPX / OMS", "AIPX / Cold path (functions)", "AIPX / Kafka lag"}
    provider = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "aipx.yml").read_text()
    )
    datasource = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["uid"] == "aipx-prometheus"
    compose = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounts
    assert mounts[provider["providers"][0]["options"]["path"]] == "./ops/monitoring/grafana/dashboards"


def _targets(config: dict[str, Any]) -> dict[str, set[str]]:
    return {
        job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
        for job in config["scrape_configs"]
    }


def test_compose_scrape_config_lists_every_service_with_metrics_on_its_port() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    scraped = {t for targets in _targets(config).values() for t in targets}
    # every compose service built from an AIPX image that serves /metrics (the ops port 9100)
    serving = set()
    for name, service in services.items():
        dockerfile = (
            (service.get("build") or {}).get("dockerfile", "")
            if isinstance(service.get("build"), dict)
            else ""
        )
        runner = "runner" in name and name.startswith("runner-")
        if service.get("restart") == "no":
            continue  # a one-shot job (the seed) serves nothing to scrape
        if runner or (
            dockerfile and "9100" in (ROOT / dockerfile).read_text().split("EXPOSE", 1)[-1].split("\n")[0]
        ):
            serving.add(f"{name}:9100")
    assert serving == scraped
    assert {"ingestion:9100", "oms:9100", "console:9100"} <= scraped
    mount = services["prometheus"]["volumes"][0]
    assert mount.startswith("./ops/monitoring/prometheus.yml:")


def test_native_scrape_config_lists_every_platform_process_with_metrics_on_its_port() -> None:
    ports = Ports()
    config = yaml.safe_load(native_config(ports))
    scraped = {t for targets in _targets(config).values() for t in targets}
    serving = {
        f"127.0.0.1:{spec.env['AIPX_METRICS_PORT']}"
        for spec in default_processes(ports)
        if "AIPX_METRICS_PORT" in spec.env
    }
    assert serving == scraped
    assert set(scrape_jobs(ports)) == set(
        _targets(yaml.safe_load((MONITORING / "prometheus.yml").read_text()))
    )


@pytest.fixture
def clean_env() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("AIPX_")}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


def test_compose_console_environment_is_accepted(clean_env: None) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    env = {k: str(v) for k, v in services["console"]["environment"].items()}
    env = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", v) for k, v in env.items()}
    os.environ.update(env)
    settings = ConsoleSettings()
    assert settings.oms_target == "oms:50051"
    assert set(settings.metrics_targets) == {"ingestion", "oms"} | {
        f"runner-{f}" for f in ("strategy", "cognitive", "notification", "recorder")
    }
    assert "18790:18790" in " ".join(services["console"]["ports"])


def test_platform_console_environment_is_accepted(clean_env: None) -> None:
    (spec,) = [s for s in default_processes(Ports()) if s.name == "console"]
    os.environ.update(spec.env)
    settings = ConsoleSettings()
    assert settings.http_port == Ports().console
    assert settings.metrics_targets["oms"] == f"http://127.0.0.1:{Ports().oms_metrics}/metrics"


def test_console_dockerfile_is_multi_stage_non_root_and_locked() -> None:
    text = (ROOT / "services" / "console" / "Dockerfile").read_text()
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert re.findall(r"--package (\S+)", text) == ["aipx-console"]
    assert "--frozen" in text and "--no-dev" in text
    assert 'ENTRYPOINT ["python", "-m", "aipx_console"]' in text
    assert re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE) == ["18790 9100"]
