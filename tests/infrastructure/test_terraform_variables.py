"""Variable validations exist, accept both environments' tfvars, and reject bad input with a clear message.

Terraform evaluates the real variables.tf (copied into a provider-free configuration) with the tfvars."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.infrastructure.conftest import AWS_ROOT, TERRAFORM_DIR, Terraform, TerraformResult, declared

CERT = "arn:aws:acm:ap-northeast-2:123456789012:certificate/00000000-0000-0000-0000-000000000000"

VALIDATED = [
    "aws_region",
    "environment",
    "vpc_cidr",
    "az_count",
    "ingestion_cpu",
    "ingestion_memory",
    "oms_cpu",
    "oms_memory",
    "oms_desired_count",
    "kafka_instance_type",
    "kafka_broker_count",
    "redis_node_type",
    "redis_num_nodes",
    "database_instance_class",
    "database_allocated_storage",
    "lambda_memory_size",
    "lambda_timeout",
    "log_retention_days",
    "oms_certificate_arn",
    "oms_allowed_cidrs",
]


def test_the_planned_variables_are_validated() -> None:
    variables = declared(AWS_ROOT, "variable")
    for name in VALIDATED:
        assert variables[name].get("validation"), f"variable {name} has no validation"
    broker = variables["kafka_broker_count"]["validation"][0]["condition"]
    assert "var.az_count" in broker, "the broker count must be checked against the AZ count"
    assert "dev" in variables["environment"]["validation"][0]["condition"]


@pytest.fixture(scope="module")
def variables_only(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("tf-vars")
    shutil.copy(AWS_ROOT / "variables.tf", work / "variables.tf")
    init = terraform.run("init", "-input=false", "-no-color", chdir=work)
    assert init.code == 0, init.stdout + init.stderr
    return work


def _plan(terraform: Terraform, work: Path, *args: str) -> TerraformResult:
    return terraform.run("plan", "-input=false", "-no-color", *args, chdir=work)


@pytest.mark.parametrize("env", ["dev", "production"])
def test_environment_tfvars_pass_every_validation(
    terraform: Terraform, variables_only: Path, env: str
) -> None:
    tfvars = TERRAFORM_DIR / "environments" / env / "aws.tfvars"
    result = _plan(terraform, variables_only, f"-var-file={tfvars}", f"-var=oms_certificate_arn={CERT}")
    assert result.code == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("environment=prod", "environment must be one of"),
        ("kafka_broker_count=2", "multiple of az_count"),
        ("kafka_broker_count=4", "multiple of az_count"),
        ("vpc_cidr=10.0.0.0/8", "prefix between /16 and /20"),
        ("ingestion_memory=4096", "between 2x and 8x ingestion_cpu"),
        ("oms_certificate_arn=not-an-arn", "ACM certificate ARN"),
        ('oms_allowed_cidrs=["0.0.0.0/0"]', "must not contain 0.0.0.0/0"),
        ("lambda_timeout=1000", "between 1 and 900"),
        ("oms_desired_count=0", "oms_desired_count must be between 1 and 3"),
        ("oms_desired_count=6", "the OMS is not scaled out"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(
    terraform: Terraform, variables_only: Path, override: str, message: str
) -> None:
    tfvars = TERRAFORM_DIR / "environments" / "dev" / "aws.tfvars"
    args = [f"-var-file={tfvars}", f"-var=oms_certificate_arn={CERT}", f"-var={override}"]
    result = _plan(terraform, variables_only, *args)
    assert result.code != 0, f"{override} was accepted"
    output = " ".join((result.stdout + result.stderr).split())
    assert message in output, output[-2000:]
