"""Prometheus for `./aipx run --prometheus`: Debian's `prometheus` package scraping every platform process.

The scrape jobs are the ones of ops/monitoring/prometheus.yml (docker compose), with the host ports of
`Ports` instead of the compose service names; tests/console/test_monitoring.py checks that both list
every process that serves /metrics.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from aipx_stack.install import require_prometheus
from aipx_stack.platform import FUNCTIONS, Ports, ProcessSpec


def scrape_jobs(ports: Ports) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Job -> [(host:port, labels)] of every platform process that serves /metrics."""
    return {
        "ingestion": [(f"127.0.0.1:{ports.ingestion_metrics}", {})],
        "oms": [(f"127.0.0.1:{ports.oms_metrics}", {})],
        "runner": [
            (f"127.0.0.1:{ports.runner_metrics + i}", {"function": name}) for i, name in enumerate(FUNCTIONS)
        ],
        "console": [(f"127.0.0.1:{ports.console_metrics}", {})],
    }


def native_config(ports: Ports) -> str:
    """prometheus.yml for the native platform."""
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [target], **({"labels": labels} if labels else {})}
                    for target, labels in targets
                ],
            }
            for job, targets in scrape_jobs(ports).items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_process(ports: Ports, state_dir: Path) -> ProcessSpec:
    """A supervised Prometheus on `ports.prometheus` (Debian's package, installed when missing, as root)."""
    binary = require_prometheus()
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "prometheus.yml"
    config.write_text(native_config(ports))
    return ProcessSpec(
        "prometheus",
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={state_dir / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{ports.prometheus}",
        ],
        ready_url=f"http://127.0.0.1:{ports.prometheus}/-/ready",
    )
