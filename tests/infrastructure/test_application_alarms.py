"""CloudWatch alarms on application metrics (modules/monitoring/application.tf): each alarm the operators need
exists, goes to the alarm SNS topic, and names a metric the code defines; the ECS metrics sidecar
(modules/ecs/metrics_collector.tf) publishes each of those metrics with the dimensions the alarm uses."""

from __future__ import annotations

import re
from typing import Any

from tests.console.test_monitoring import defined_metrics
from tests.infrastructure.conftest import AWS_ROOT, MODULES, ROOT, load_hcl, module_calls, module_resources

APPLICATION = MODULES / "monitoring" / "application.tf"
COLLECTOR = MODULES / "ecs" / "metrics_collector.tf"

# what the issue asks an alarm for -> the alarm (resource key in application.tf's locals, or resource name)
REQUIRED = {
    "ingestion drops": "ingestion-dropped",
    "feed gaps per minute": "feed-gaps",
    "feed resyncs per minute": "feed-resyncs",
    "stale feeds": "feed-stale",
    "outbox lag": "oms-outbox-lag",
}


def _locals(path: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in load_hcl(path).get("locals", []):
        merged.update(block)
    return merged


def _metric_series() -> set[str]:
    """Metric names as the sidecar publishes them: Prometheus sample names; histograms by their base name."""
    names = defined_metrics()
    return names | {n.removesuffix("_bucket") for n in names if n.endswith("_bucket")}


def _alarms() -> dict[str, dict[str, Any]]:
    return module_resources("monitoring", "aws_cloudwatch_metric_alarm")


def _declared_dimensions(metric: str) -> list[list[str]]:
    """The dimension sets the sidecar's metric declarations give `metric` (empty: not published)."""
    found: list[list[str]] = []
    for declaration in _locals(COLLECTOR)["metric_declarations"]:
        if any(re.search(selector, metric) for selector in declaration["metric_name_selectors"]):
            found.extend(declaration["dimensions"])
    return found


def test_every_required_application_alarm_exists_on_a_metric_the_code_defines() -> None:
    alarms = _locals(APPLICATION)["application_alarms"]
    series = _metric_series()
    for what, key in REQUIRED.items():
        assert key in alarms, f"no alarm on {what}"
        metric = alarms[key]["metric"]
        assert metric in series, f"{key}: {metric} is defined by no service"
        assert [d for d in _declared_dimensions(metric) if d == ["Service"]] == [["Service"]], (
            f"{key}: the metrics sidecar does not publish {metric} with the Service dimension"
        )
        assert alarms[key]["service"] in {"ingestion", "oms"}
    resource = _alarms()["application"]
    assert resource["for_each"] == "${local.application_alarms}"
    assert resource["namespace"] == "${local.app_ns}"
    assert resource["metric_name"] == "${each.value.metric}"
    assert resource["dimensions"] == {"Service": "${each.value.service}"}


def test_oms_error_rate_alarm_divides_server_errors_by_requests() -> None:
    alarm = _alarms()["oms_error_rate"]
    assert "aipx_oms_requests_total" in _metric_series()
    queries = alarm["metric_query"]
    total = next(q for q in queries if q.get("id") == "total")["metric"][0]
    assert total["metric_name"] == "aipx_oms_requests_total"
    assert total["dimensions"] == {"Service": "oms"}
    errors = alarm["dynamic"][0]["metric_query"]["content"][0]["metric"][0]
    assert errors["metric_name"] == "aipx_oms_requests_total"
    assert errors["dimensions"] == {"Service": "oms", "code": "${metric_query.value}"}
    assert ["Service", "code"] in _declared_dimensions("aipx_oms_requests_total")
    codes = _locals(APPLICATION)["oms_error_codes"]
    assert {"INTERNAL", "UNAVAILABLE"} <= set(codes) and "INVALID_ARGUMENT" not in codes
    expression = next(q for q in queries if q.get("return_data"))["expression"]
    assert "/ IF(total > 0, total, 1)" in expression


def test_oms_p99_alarm_uses_the_servers_latency_histogram() -> None:
    alarm = _alarms()["oms_request_p99"]
    assert alarm["metric_name"] == "aipx_oms_request_seconds"
    assert "aipx_oms_request_seconds_bucket" in defined_metrics()  # a histogram
    assert alarm["extended_statistic"] == "p99"
    assert ["Service"] in _declared_dimensions("aipx_oms_request_seconds")


def test_dead_letter_alarm_per_function_on_the_powertools_metric() -> None:
    alarm = _alarms()["dead_lettered"]
    assert alarm["for_each"] == "${var.lambda_function_names}"
    assert alarm["metric_name"] == "RecordsDeadLettered"
    assert alarm["dimensions"] == {"service": "${each.key}"}
    batch = (ROOT / "libs" / "aipx" / "src" / "aipx" / "lambda_kit" / "batch.py").read_text()
    assert 'name="RecordsDeadLettered"' in batch
    variables: dict[str, Any] = {}
    for block in load_hcl(MODULES / "monitoring" / "variables.tf")["variable"]:
        variables.update(block)
    lambda_tf = (MODULES / "lambda" / "main.tf").read_text()
    namespace = variables["function_metrics_namespace"]["default"]
    assert f'POWERTOOLS_METRICS_NAMESPACE = "{namespace}"' in lambda_tf


def test_every_application_alarm_notifies_the_sns_topic_and_is_on_the_dashboard() -> None:
    alarms = _alarms()
    for name in ("application", "dead_lettered", "oms_error_rate", "oms_request_p99"):
        assert alarms[name]["alarm_actions"] == "${local.actions}", name
        assert alarms[name]["ok_actions"] == "${local.actions}", name
    assert _locals(MODULES / "monitoring" / "main.tf")["actions"] == ["${aws_sns_topic.alarms.arn}"]
    main = (MODULES / "monitoring" / "main.tf").read_text()
    assert "local.application_widgets)" in main
    widgets = (APPLICATION).read_text().split("application_widgets = [", 1)[1]
    for metric in ("aipx_ingestion_dropped_total", "aipx_ingestion_gaps_total", "aipx_oms_request_seconds"):
        assert metric in widgets


def test_the_metrics_sidecar_is_in_each_task_definition_and_wired_to_the_monitoring_namespace() -> None:
    ecs_main = (MODULES / "ecs" / "main.tf").read_text()
    assert "[local.metrics_sidecar[each.key]]" in ecs_main
    collector = _locals(COLLECTOR)
    assert collector["metrics_namespace"] == "AIPX/Services"
    calls = module_calls(AWS_ROOT)
    assert calls["monitoring"]["application_metrics_namespace"] == "${module.ecs.metrics_namespace}"
    sidecar = collector["metrics_sidecar"]
    assert "AOT_CONFIG_CONTENT" in str(sidecar) and "readonlyRootFilesystem" in str(sidecar)
    policy = module_resources("ecs", "aws_iam_role_policy")["metrics"]
    assert policy["role"] == "${aws_iam_role.task[each.key].id}"
    # every metric the sidecar publishes is one the code defines
    series = _metric_series()
    for declaration in collector["metric_declarations"]:
        for selector in declaration["metric_name_selectors"]:
            assert any(re.search(selector, m) for m in series), f"{selector} matches no metric of the code"
