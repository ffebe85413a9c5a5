"""Every Terraform file parses, and the modules fit together (the part of `terraform validate` that needs no
provider): module sources are local, arguments match variables, references name real outputs/variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infrastructure.conftest import (
    AWS_ROOT,
    MODULES,
    TERRAFORM_DIR,
    declared,
    load_hcl,
    module_calls,
    tf_files,
)

MODULE_DIRS = sorted(p for p in MODULES.iterdir() if p.is_dir())
CONFIG_DIRS = [AWS_ROOT, *MODULE_DIRS]


def _text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))


def test_terraform_tree_has_the_expected_layout() -> None:
    for name in ("backend.tf", "provider.tf", "variables.tf", "main.tf", "outputs.tf", "README.md"):
        assert (AWS_ROOT / name).is_file(), f"aws/{name} is missing"
    for env in ("dev", "production"):
        assert (TERRAFORM_DIR / "environments" / env / "aws.tfvars").is_file()
    expected = {
        "network",
        "security_groups",
        "kms",
        "s3_bucket",
        "data_lake",
        "msk",
        "kafka_topics",
        "redis",
        "rds",
        "ecr",
        "ecs",
        "lambda",
        "monitoring",
    }
    assert expected <= {p.name for p in MODULE_DIRS}
    for module in MODULE_DIRS:
        for name in ("main.tf", "variables.tf", "outputs.tf"):
            assert (module / name).is_file(), f"{module.name}/{name} is missing"


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(TERRAFORM_DIR)))
def test_every_tf_file_parses(path: Path) -> None:
    parsed = load_hcl(path)
    assert parsed, f"{path} parsed to nothing"


@pytest.mark.parametrize(
    "path", sorted(TERRAFORM_DIR.glob("environments/*/aws.tfvars")), ids=lambda p: p.parent.name
)
def test_tfvars_parse_and_name_declared_variables(path: Path) -> None:
    values = load_hcl(path)
    variables = declared(AWS_ROOT, "variable")
    unknown = sorted(set(values) - set(variables))
    assert not unknown, f"{path} sets undeclared variables: {unknown}"
    assert values["environment"] == path.parent.name


def test_backend_is_encrypted_s3_with_dynamodb_locking_and_provider_is_pinned() -> None:
    backend = load_hcl(AWS_ROOT / "backend.tf")["terraform"][0]["backend"][0]["s3"]
    assert backend["encrypt"] is True
    assert backend["dynamodb_table"] == "aipx-terraform-locks"
    assert backend["bucket"] == "aipx-terraform-state"
    terraform = load_hcl(AWS_ROOT / "provider.tf")["terraform"][0]
    aws = terraform["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 5\.\d+", aws["version"]), aws["version"]
    provider = load_hcl(AWS_ROOT / "provider.tf")["provider"][0]["aws"]
    tags = provider["default_tags"][0]["tags"]
    for tag in ("Project", "Environment", "ManagedBy"):
        assert tag in tags


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=lambda p: p.name)
def test_module_calls_are_local_and_match_the_module_variables(directory: Path) -> None:
    for name, args in module_calls(directory).items():
        source = args["source"]
        assert source.startswith("../"), (
            f"module {name}: only local modules (no registry downloads), got {source}"
        )
        target = (directory / source).resolve()
        assert target.is_dir(), f"module {name}: {source} does not exist"
        variables = declared(target, "variable")
        passed = {k for k in args if k not in {"source", "depends_on", "providers", "count", "for_each"}}
        unknown = sorted(passed - set(variables))
        assert not unknown, f"module {name} passes arguments {target.name} does not declare: {unknown}"
        required = {v for v, body in variables.items() if "default" not in body}
        missing = sorted(required - passed)
        assert not missing, f"module {name} does not pass required variables of {target.name}: {missing}"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=lambda p: p.name)
def test_references_name_declared_variables_outputs_and_locals(directory: Path) -> None:
    text = _text(directory)
    variables = set(declared(directory, "variable"))
    used_vars = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", text))
    assert used_vars <= variables, f"{directory.name}: undeclared variables {sorted(used_vars - variables)}"
    unused_vars = variables - used_vars
    assert not unused_vars, f"{directory.name}: variables never used {sorted(unused_vars)}"

    local_names: set[str] = set()
    for path in sorted(directory.glob("*.tf")):
        for block in load_hcl(path).get("locals", []):
            local_names |= set(block)
    used_locals = set(re.findall(r"\blocal\.([a-z_][a-z0-9_]*)", text))
    assert used_locals <= local_names, (
        f"{directory.name}: undefined locals {sorted(used_locals - local_names)}"
    )

    calls = module_calls(directory)
    for module, output in set(re.findall(r"\bmodule\.([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)", text)):
        assert module in calls, f"{directory.name}: reference to undeclared module {module}"
        target = (directory / calls[module]["source"]).resolve()
        outputs = declared(target, "output")
        assert output in outputs, (
            f"{directory.name}: module.{module}.{output} is not an output of {target.name}"
        )


def test_every_module_output_and_variable_has_a_description() -> None:
    for directory in CONFIG_DIRS:
        for kind in ("variable", "output"):
            for name, body in declared(directory, kind).items():
                assert body.get("description"), f"{directory.name}: {kind} {name} has no description"
