"""The ECS/ALB configuration of the OMS is consistent with one active writer and hot standbys: a fixed
count (leader + standbys) without autoscaling, the ALB routing by the leader check the OMS serves, ECS not
replacing standbys for failing it, start-new-then-stop-old deploys, a stop timeout longer than the OMS's
shutdown, and an alarm on "no leader" rather than on "unhealthy targets" (a standby is one by design)."""

from __future__ import annotations

from typing import Any

from aipx_oms.server import LEADER_CHECK_PATH
from aipx_oms.settings import OmsSettings

from tests.infrastructure.conftest import (
    AWS_ROOT,
    MODULES,
    TERRAFORM_DIR,
    declared,
    load_hcl,
    module_resources,
)

TAKEOVER_S = 10  # the bound on a standby taking over; the ALB's own delay is documented beside it


def _ecs_locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in load_hcl(MODULES / "ecs" / "main.tf")["locals"]:
        merged.update(block)
    return merged


def test_the_oms_is_not_autoscaled_and_runs_a_fixed_leader_plus_standbys() -> None:
    scaled = _ecs_locals()["scaled_services"]
    assert "oms" not in scaled and "ingestion" in scaled
    for rtype in ("aws_appautoscaling_target", "aws_appautoscaling_policy"):
        for name, body in module_resources("ecs", rtype).items():
            assert body["for_each"] == "${local.scaled_services}", f"{rtype}.{name} must not scale the OMS"
    oms = module_resources("ecs", "aws_ecs_service")["oms"]
    assert oms["desired_count"] == "${var.oms_desired_count}"
    assert "lifecycle" not in oms, "Terraform owns the OMS count (nothing else changes it)"
    assert "oms_max_count" not in declared(AWS_ROOT, "variable")
    assert "oms_max_count" not in declared(MODULES / "ecs", "variable")
    counts = {}
    for env in ("dev", "production"):
        tfvars = load_hcl(TERRAFORM_DIR / "environments" / env / "aws.tfvars")
        assert "oms_max_count" not in tfvars
        counts[env] = tfvars["oms_desired_count"]
        assert 1 <= counts[env] <= 3
    assert counts["production"] >= 2, "production runs a hot standby"


def test_the_alb_routes_to_the_leader_by_the_check_the_oms_serves() -> None:
    assert _ecs_locals()["oms_leader_check_path"] == LEADER_CHECK_PATH
    group = module_resources("ecs", "aws_lb_target_group")["oms_grpc"]
    check = group["health_check"][0]
    assert group["protocol_version"] == "GRPC"
    assert check["path"] == "${local.oms_leader_check_path}" and check["matcher"] == "0"
    # A new leader receives orders after healthy_threshold checks; a dead one stops receiving them after
    # unhealthy_threshold checks.
    assert check["interval"] * check["healthy_threshold"] <= TAKEOVER_S
    assert check["interval"] * check["unhealthy_threshold"] <= TAKEOVER_S
    assert check["timeout"] < check["interval"]
    # The leader keeps the lock while it drains: a short drain is a short hand-over.
    assert group["deregistration_delay"] <= 10


def test_ecs_keeps_standbys_and_deploys_start_new_then_stop_old() -> None:
    oms = module_resources("ecs", "aws_ecs_service")["oms"]
    # ECS replaces tasks failing the ALB check unless the grace period covers them: a standby always fails
    # the leader check, so ECS must ignore ALB health for replacement (at the maximum ECS accepts).
    assert oms["health_check_grace_period_seconds"] == "${local.oms_health_check_grace_period_s}"
    assert _ecs_locals()["oms_health_check_grace_period_s"] == 2147483647
    assert oms["deployment_minimum_healthy_percent"] == 100, "old tasks stop only after new ones run"
    assert oms["deployment_maximum_percent"] == 200, "new tasks start (as standbys) before old ones stop"
    assert oms["deployment_circuit_breaker"][0] == {"enable": True, "rollback": True}
    assert oms["network_configuration"][0]["assign_public_ip"] is False
    balancer = oms["load_balancer"][0]
    assert balancer["target_group_arn"] == "${aws_lb_target_group.oms_grpc.arn}"
    assert balancer["container_name"] == "oms"
    # The service left the for_each of autoscaled services: moved, not destroyed and re-created.
    moved = load_hcl(MODULES / "ecs" / "main.tf").get("moved", [])
    assert {"from": '${aws_ecs_service.this["oms"]}', "to": "${aws_ecs_service.oms}"} in moved


def test_the_stop_timeout_covers_the_oms_shutdown() -> None:
    """ECS sends SIGKILL stopTimeout seconds after SIGTERM: the OMS must have released its lock by then
    (in-flight grace + outbox flush), or the standby waits for PostgreSQL to end the dead session."""
    source = (MODULES / "ecs" / "main.tf").read_text()
    assert "stopTimeout            = 30" in source
    settings = OmsSettings()
    assert settings.shutdown_grace_s + settings.shutdown_flush_s + 5 <= 30


def test_the_alarm_watches_for_no_leader() -> None:
    alarms = module_resources("monitoring", "aws_cloudwatch_metric_alarm")
    assert "oms_unhealthy" not in alarms, "a standby is an unhealthy target by design"
    alarm = alarms["oms_no_leader"]
    assert alarm["metric_name"] == "HealthyHostCount" and alarm["namespace"] == "AWS/ApplicationELB"
    assert alarm["comparison_operator"] == "LessThanThreshold" and alarm["threshold"] == 1
    assert alarm["treat_missing_data"] == "breaching"
