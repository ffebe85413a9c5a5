"""Delivery files: Dockerfiles, docker-compose.yml, GitHub workflows, the backend setup script.

The environment that docker-compose and Terraform give each component is validated by that component's own
strict settings class, so a misspelt or mistyped AIPX_* variable fails here, not at start in a container.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from aipx.settings import KafkaSettings
from aipx_cognitive.settings import CognitiveSettings
from aipx_exchange_sim.settings import SimSettings
from aipx_ingestion.settings import IngestionSettings
from aipx_notification.settings import NotificationSettings
from aipx_oms.settings import OmsSettings
from aipx_recorder.settings import RecorderSettings
from aipx_stack.endpoints import Endpoints
from aipx_stack.platform import SEED_ARGS, Ports, platform_env, trading_env
from aipx_strategy.settings import StrategySettings

from tests.infrastructure.conftest import AWS_ROOT, MODULES, ROOT, load_hcl, module_calls

COMPOSE = ROOT / "docker-compose.yml"
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY_ACTION = ROOT / ".github" / "actions" / "deploy" / "action.yml"
CHECKOV = "checkov==3.3.30"

IMAGES = {
    # Dockerfile directory -> (uv package(s), entry module, ports)
    "services/ingestion": (["aipx-ingestion"], "aipx_ingestion", {"9100"}),
    "services/oms": (["aipx-oms"], "aipx_oms", {"50051", "9100"}),
    "services/exchange-sim": (["aipx-exchange-sim"], "aipx_exchange_sim", {"18765", "18766"}),
    "lambdas/runner": (
        ["aipx-runner", "aipx-strategy", "aipx-cognitive", "aipx-notification", "aipx-recorder"],
        "aipx_runner",
        set(),
    ),
}

Settings = Callable[[], object]
FUNCTION_SETTINGS: dict[str, Settings] = {
    "strategy": StrategySettings,
    "cognitive": CognitiveSettings,
    "notification": NotificationSettings,
    "recorder": RecorderSettings,
}


@pytest.fixture
def clean_env() -> Iterator[Callable[[dict[str, str]], None]]:
    """Replace every AIPX_* variable of the process by the given ones (restored afterwards)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AIPX_")}

    def apply(env: dict[str, str]) -> None:
        for key in [k for k in os.environ if k.startswith("AIPX_")]:
            del os.environ[key]
        os.environ.update(env)

    yield apply
    apply(saved)


def _settings_accept(
    settings: Settings, env: dict[str, str], apply: Callable[[dict[str, str]], None]
) -> None:
    apply({k: v for k, v in env.items() if k.startswith("AIPX_")})
    settings()  # raises a ValidationError naming the variable if one is unknown or invalid


# --- Dockerfiles -----------------------------------------------------------------------------------
@pytest.mark.parametrize("directory", sorted(IMAGES))
def test_dockerfiles_are_multi_stage_non_root_and_locked(directory: str) -> None:
    packages, module, ports = IMAGES[directory]
    text = (ROOT / directory / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.MULTILINE)
    assert len(stages) >= 2 and stages[-1][1] == "runtime", "build stage + runtime stage"
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE), "the runtime runs as uid 10001"
    assert "uv" not in re.sub(r"/opt/venv|aipx", "", runtime.split("ENTRYPOINT")[0].split("COPY --from")[0])
    export = re.search(r"uv export ([^\n]+)", text)
    assert export, "dependencies come from the lock"
    assert "--frozen" in export.group(1) and "--no-dev" in text
    assert re.findall(r"--package (\S+)", text) == packages
    assert f'ENTRYPOINT ["python", "-m", "{module}"]' in text
    exposed = set(re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE)[0].split()) if ports else set()
    assert exposed == ports
    if ports:
        assert "HEALTHCHECK" in text


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in ("**/.venv", ".git", "tests", "infrastructure", "dist"):
        assert entry in ignored


# --- docker-compose --------------------------------------------------------------------------------
def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    # ${NAME:-default} -> default (what compose substitutes when NAME is unset)
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", v) for k, v in env.items()}


def test_compose_seeds_and_wires_the_chain_like_aipx_run() -> None:
    """`docker compose up` trades as `./aipx run` does: the same seed command before the OMS starts, and the
    same trading settings (cognitive's OMS target and API key, auto-trading, fast strategies)."""
    services = _compose()["services"]
    seed = services["oms-seed"]
    assert seed["build"]["dockerfile"] == "services/oms/Dockerfile"
    entrypoint = re.search(
        r"^ENTRYPOINT \[(.*)\]$", (ROOT / "services/oms/Dockerfile").read_text(), re.MULTILINE
    )
    assert entrypoint, "the OMS image has an entrypoint"
    argv = [part.strip().strip('"') for part in entrypoint.group(1).split(",")] + seed["command"]
    # The native path's seed command, the loopback guard overridden (compose's PostgreSQL is a container).
    assert argv == ["python", *SEED_ARGS, "--allow-non-local"], "compose runs the native path's seed command"
    assert seed["restart"] == "no" and seed["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["oms"]["depends_on"]["oms-seed"]["condition"] == "service_completed_successfully"
    expected = trading_env("oms:50051")
    for name in FUNCTION_SETTINGS:
        env = _compose_env(services[f"runner-{name}"])
        assert {k: env.get(k) for k in expected} == expected, name
        assert services[f"runner-{name}"]["depends_on"]["oms"]["condition"] == "service_healthy"
    endpoints = Endpoints("k:9092", "postgresql://a:b@p/aipx", "redis://r/0", "http://s3", "b", "r", "a", "s")
    native = platform_env(endpoints, Ports())
    assert {k: native[k] for k in expected if k != "AIPX_COGNITIVE_OMS_TARGET"} == {
        k: v for k, v in expected.items() if k != "AIPX_COGNITIVE_OMS_TARGET"
    }, "the native path uses the same trading settings"


def test_compose_has_the_platform_with_health_checks_and_start_conditions() -> None:
    services = _compose()["services"]
    expected = {"kafka", "topics", "postgres", "redis", "s3", "s3-bucket", "exchange-sim"}
    runners = {f"runner-{name}" for name in FUNCTION_SETTINGS}
    assert expected | {"ingestion", "oms"} | runners <= set(services)
    for name in FUNCTION_SETTINGS:  # one container per function, as one Lambda function each in AWS
        assert services[f"runner-{name}"]["command"] == ["--function", name]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["s3"]["image"].startswith("motoserver/moto:")
    assert services["topics"]["entrypoint"] == ["python", "-m", "aipx.kafka.admin"]
    assert "50051:50051" in " ".join(services["oms"]["ports"])
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = spec["condition"]
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            else:
                assert condition == "service_completed_successfully"
                assert services[dependency].get("restart") == "no", f"{dependency} is a one-shot"
    for name in ("ingestion", "oms"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])


def test_compose_environment_is_accepted_by_each_component(
    clean_env: Callable[[dict[str, str]], None],
) -> None:
    services = _compose()["services"]
    _settings_accept(IngestionSettings, _compose_env(services["ingestion"]), clean_env)
    _settings_accept(OmsSettings, _compose_env(services["oms"]), clean_env)
    _settings_accept(SimSettings, _compose_env(services["exchange-sim"]), clean_env)
    _settings_accept(KafkaSettings, _compose_env(services["topics"]), clean_env)
    for name, settings in FUNCTION_SETTINGS.items():
        _settings_accept(settings, _compose_env(services[f"runner-{name}"]), clean_env)


# --- Terraform environment -------------------------------------------------------------------------
# Values for the expressions Terraform fills in at apply time (the keys and literal values are Terraform's).
PLACEHOLDERS = {
    "AIPX_KAFKA_BOOTSTRAP_SERVERS": "b-1.aipx.kafka.ap-northeast-2.amazonaws.com:9098",
    "AIPX_LOG_LEVEL": "INFO",
    "AIPX_S3_BUCKET": "aipx-dev-data-lake-123456789012",
    "AIPX_S3_REGION": "ap-northeast-2",
    "AIPX_REDIS_URL": "rediss://:token@master.aipx-dev.cache.amazonaws.com:6379/0",
    "AIPX_POSTGRES_DSN": "postgresql://aipx:secret@aipx-dev.rds.amazonaws.com:5432/aipx?sslmode=require",
    "AIPX_COGNITIVE_OMS_TARGET": "internal-aipx-dev-oms.elb.amazonaws.com:443",
}


def _value(key: str, value: Any) -> str:
    text = str(value)
    return PLACEHOLDERS[key] if "${" in text else text


def _terraform_env() -> tuple[dict[str, str], dict[str, Any]]:
    root: dict[str, Any] = {}
    for block in load_hcl(AWS_ROOT / "main.tf")["locals"]:
        root.update(block)
    common_expr = root["common_env"]
    kafka = {k: _value(k, v) for k, v in root["kafka_client_env"].items()}
    merged = re.search(r"merge\(local\.kafka_client_env, \{(.*)\}\)", common_expr, re.DOTALL)
    assert merged, common_expr
    pairs = dict(re.findall(r"(AIPX_[A-Z0-9_]+)\s*=\s*(\"[^\"]*\"|\S+)", merged.group(1)))
    # a quoted literal is Terraform's value; anything else is an expression filled in at apply time
    literal = {k: v.strip('"') if v.startswith('"') else "${expr}" for k, v in pairs.items()}
    common = {**kafka, **{k: _value(k, v) for k, v in literal.items()}}
    return common, module_calls(AWS_ROOT)


def test_terraform_environment_is_accepted_by_each_component(
    clean_env: Callable[[dict[str, str]], None],
) -> None:
    common, calls = _terraform_env()
    assert common["AIPX_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert common["AIPX_S3_ENDPOINT_URL"] == ""
    variables: dict[str, Any] = {}
    for block in load_hcl(AWS_ROOT / "variables.tf")["variable"]:
        variables.update(block)
    ecs = calls["ecs"]
    ingestion_env = {**common, **variables["ingestion_environment"]["default"]}
    ingestion_env |= {k: PLACEHOLDERS[k] for k in ecs["ingestion_secrets"]}
    _settings_accept(IngestionSettings, ingestion_env, clean_env)
    oms_env = {**common, **variables["oms_environment"]["default"]}
    oms_env |= {k: PLACEHOLDERS[k] for k in ecs["oms_secrets"]}
    _settings_accept(OmsSettings, oms_env, clean_env)

    function_env = {**common, "AIPX_REDIS_URL": PLACEHOLDERS["AIPX_REDIS_URL"]}
    assert "AIPX_REDIS_URL" in calls["lambda"]["environment"]
    assert "AIPX_COGNITIVE_OMS_TARGET" in calls["lambda"]["function_environment"]
    for name, settings in FUNCTION_SETTINGS.items():
        extra = (
            {"AIPX_COGNITIVE_OMS_TARGET": PLACEHOLDERS["AIPX_COGNITIVE_OMS_TARGET"]}
            if name == "cognitive"
            else {}
        )
        _settings_accept(settings, {**function_env, **extra}, clean_env)
    bootstrap = module_calls(AWS_ROOT)["kafka_topics"]
    assert bootstrap["bootstrap_brokers"] == "${module.msk.bootstrap_brokers_sasl_iam}"
    topics_env = (MODULES / "kafka_topics" / "main.tf").read_text()
    assert 'AIPX_KAFKA_SASL_MECHANISM    = "OAUTHBEARER"' in topics_env


# --- Workflows -------------------------------------------------------------------------------------
def _workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return loaded


def test_ci_runs_the_same_command_as_ci_run() -> None:
    ci = _workflow("ci.yml")
    steps = ci["jobs"]["test"]["steps"]
    assert any(step.get("run", "").strip() == "bash .ci/run" for step in steps)
    assert "./aipx test" in (ROOT / ".ci" / "run").read_text()
    assert ci["permissions"] == {"contents": "read"}


def _triggers(name: str) -> dict[str, Any]:
    raw: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    triggers: dict[str, Any] = raw[True] if True in raw else raw["on"]  # YAML 1.1 reads the key `on` as True
    return triggers


def _action_steps() -> list[dict[str, Any]]:
    action: dict[str, Any] = yaml.safe_load(DEPLOY_ACTION.read_text())
    steps: list[dict[str, Any]] = action["runs"]["steps"]
    return steps


def test_deploy_builds_pushes_and_rolls_out_with_approval_for_production() -> None:
    deploy = _workflow("deploy.yml")
    jobs = deploy["jobs"]
    assert jobs["dev"]["environment"] == "dev"
    assert jobs["production"]["environment"] == "production"
    assert jobs["production"]["needs"] == "production-plan"
    assert deploy["permissions"]["id-token"] == "write"
    assert not _triggers("deploy.yml")["workflow_dispatch"], "no dispatch inputs (SLSA)"
    action = DEPLOY_ACTION.read_text()
    for needle in (
        "scripts/build_lambdas.py",
        'docker build --file "services/${service}/Dockerfile"',
        "docker push",
        "terraform plan",
        "terraform apply -input=false -lock-timeout=5m tfplan",
        "aws ecs wait services-stable",
        "aws lambda wait function-updated-v2",
    ):
        assert needle in action, needle


def test_nothing_deploys_before_ci_passed_on_that_commit() -> None:
    """dev runs only when the CI workflow succeeded on a push to main, at the commit CI tested; production
    (tags, manual runs) runs CI itself first and plans only once it passed."""
    triggers = _triggers("deploy.yml")
    assert "push" not in triggers or "branches" not in triggers["push"], "no deploy on a bare push to main"
    assert triggers["workflow_run"] == {"workflows": ["ci"], "types": ["completed"], "branches": ["main"]}
    assert _workflow("ci.yml")["name"] == "ci"
    jobs = _workflow("deploy.yml")["jobs"]
    gate = " ".join(jobs["dev"]["if"].split())
    for condition in (
        "github.event_name == 'workflow_run'",
        "github.event.workflow_run.conclusion == 'success'",
        "github.event.workflow_run.event == 'push'",
    ):
        assert condition in gate, condition
    checkout = jobs["dev"]["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert "workflow_call" in _triggers("ci.yml")
    assert jobs["production-plan"]["needs"] == "ci"


def test_production_applies_exactly_the_reviewed_saved_plan() -> None:
    jobs = _workflow("deploy.yml")["jobs"]
    plan = jobs["production-plan"]["steps"][-1]["with"]
    apply = jobs["production"]["steps"][-1]["with"]
    assert (plan["mode"], apply["mode"]) == ("plan", "apply-plan")
    assert plan["plan-artifact"] == apply["plan-artifact"], "the approved job applies the planned artifact"
    steps = {s.get("name", s.get("uses", "")): s for s in _action_steps()}
    upload = next(s for s in steps.values() if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "inputs.mode == 'plan'"
    for path in ("tfplan", "tfplan.sha256", "dist/lambda/"):
        assert path in upload["with"]["path"], path
    download = next(
        s for s in steps.values() if str(s.get("uses", "")).startswith("actions/download-artifact")
    )
    assert download["if"] == "inputs.mode == 'apply-plan'"
    # In apply-plan mode nothing is rebuilt or re-planned: only the saved file is checked and applied.
    for name, step in steps.items():
        runs = str(step.get("run", ""))
        if "terraform plan" in runs or "build_lambdas" in runs or "docker build" in runs:
            assert step["if"] in ("inputs.mode != 'apply-plan'",), name
    assert "sha256sum --check tfplan.sha256" in steps["Check the plan is the one reviewed"]["run"]
    assert steps["Check the plan is the one reviewed"]["if"] == "inputs.mode == 'apply-plan'"
    applied = steps["Terraform apply of the saved plan (ECS task definitions + Lambda code)"]
    assert applied["run"].strip() == "terraform apply -input=false -lock-timeout=5m tfplan"
    assert applied["if"] == "inputs.mode != 'plan'"


def test_delivery_files_pass_checkov() -> None:
    uvx = shutil.which("uvx")
    assert uvx, "uvx (from uv) is needed to run checkov in an isolated environment"
    files = [ROOT / d / "Dockerfile" for d in IMAGES] + [COMPOSE]
    args = [arg for f in files for arg in ("-f", str(f))]
    proc = subprocess.run(
        [
            uvx,
            "--from",
            CHECKOV,
            "checkov",
            "-d",
            str(ROOT / ".github"),
            *args,
            "--framework",
            "dockerfile",
            "github_actions",
            "secrets",
            "--compact",
            "--quiet",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert "Passed checks:" in output, f"checkov did not run:\n{output[-3000:]}"
    assert proc.returncode == 0, f"checkov found problems:\n{output[-6000:]}"


# --- Backend setup script --------------------------------------------------------------------------
def test_setup_backend_script_is_valid_bash_and_explains_a_missing_cli(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "setup-aws-backend.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # no aws on PATH
    proc = subprocess.run(["/bin/bash", str(script)], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1
    assert "the AWS CLI is not installed" in proc.stderr
    bad = subprocess.run(["/bin/bash", str(script), "--nope"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "unknown argument: --nope" in bad.stderr


def test_the_compose_seed_command_seeds_a_database_the_guard_calls_non_local(
    new_database: Callable[[], Coroutine[Any, Any, str]],
) -> None:
    """The seed as compose runs it, in a real process against a real database that the loopback guard does
    not recognise as the local stack's (as compose's `postgres` container is not): it seeds, where the bare
    native command refuses (exit 2, nothing written)."""
    dsn = asyncio.run(new_database())
    command = _compose()["services"]["oms-seed"]["command"]
    env = {**os.environ, "AIPX_POSTGRES_DSN": dsn, "AIPX_STACK_POSTGRES_PORT": "1"}  # "not the stack's port"
    refused = subprocess.run(
        [sys.executable, *SEED_ARGS], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 2 and "refusing to seed" in refused.stderr, refused.stderr
    assert _demo_accounts(dsn) == [], "the refused seed wrote nothing"
    seeded = subprocess.run(
        [sys.executable, "-m", "aipx_oms", *command], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    assert _demo_accounts(dsn) == ["demo"]


def _demo_accounts(dsn: str) -> list[str]:
    async def fetch() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            if await conn.fetchval("SELECT to_regclass('accounts')") is None:
                return []
            rows = await conn.fetch("SELECT account_id FROM accounts WHERE account_id = 'demo'")
            return [r[0] for r in rows]
        finally:
            await conn.close()

    return asyncio.run(fetch())
