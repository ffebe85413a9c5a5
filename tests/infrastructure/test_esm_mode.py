"""Terraform writes the event source mapping mode into every function's environment, from the same variable
that configures the mappings, in a form the functions' settings accept."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aipx.lambda_kit import LambdaSettings

from tests.infrastructure.conftest import AWS_ROOT, MODULES, TERRAFORM_DIR, load_hcl, module_calls


def _function_environment() -> str:
    [function] = [
        b["aws_lambda_function"]
        for b in load_hcl(MODULES / "lambda" / "main.tf")["resource"]
        if "aws_lambda_function" in b
    ]
    env: Any = function["this"]["environment"]
    return str(env)


def test_every_function_gets_the_mode_of_its_mappings_last_in_the_merge() -> None:
    env = _function_environment()
    found = re.search(r"AIPX_LAMBDA_ESM_MODE\s*=\s*(.*?)\s*}", env)
    assert found, env
    assert found.group(1) == '${var.provisioned_mode ? "provisioned" : "on-demand"}' or (
        "var.provisioned_mode" in found.group(1) and "on-demand" in found.group(1)
    )
    # Last in the merge: neither var.environment nor function_environment can contradict the mappings.
    assert env.rindex("AIPX_LAMBDA_ESM_MODE") > env.rindex("function_environment")
    mapping = (MODULES / "lambda" / "main.tf").read_text()
    for honoured_only_when_provisioned in ("maximum_retry_attempts", "function_response_types"):
        assert re.search(rf"{honoured_only_when_provisioned}\s*=\s*var\.provisioned_mode \?", mapping)
    assert module_calls(AWS_ROOT)["lambda"]["provisioned_mode"] == "${var.kafka_esm_provisioned_mode}"


@pytest.mark.parametrize(("env", "expected"), [("dev", "on-demand"), ("production", "provisioned")])
def test_each_environment_tells_its_functions_a_mode_they_accept(
    env: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tfvars = load_hcl(TERRAFORM_DIR / "environments" / env / "aws.tfvars")
    value = "provisioned" if tfvars["kafka_esm_provisioned_mode"] else "on-demand"
    assert value == expected
    monkeypatch.setenv("AIPX_LAMBDA_ESM_MODE", value)
    assert LambdaSettings().esm_mode == expected


def test_every_function_counts_on_demand_attempts_in_the_redis_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _function_environment()
    found = re.search(r'AIPX_LAMBDA_ATTEMPT_STORE\s*=\s*"([^"]*)"', env)
    assert found, env
    # In the same last block as the mode: nothing before it in the merge can turn the counting off.
    assert env.rindex("AIPX_LAMBDA_ATTEMPT_STORE") > env.rindex("function_environment")
    monkeypatch.setenv("AIPX_LAMBDA_ATTEMPT_STORE", found.group(1))
    assert LambdaSettings().attempt_store == "redis"
    # ... and the store is the ElastiCache Redis the root module hands every function.
    assert "AIPX_REDIS_URL = module.redis.url" in str(module_calls(AWS_ROOT)["lambda"]["environment"])
