"""scripts/build_lambdas.py: one command builds a zip per function, with its dependencies, for Lambda."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from aipx.functions import manifest

from tests.infrastructure.conftest import ROOT


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_lambdas", ROOT / "scripts" / "build_lambdas.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_lambdas"] = module
    spec.loader.exec_module(module)
    return module


def test_one_package_per_manifest_function_plus_the_topic_bootstrap(build: ModuleType) -> None:
    specs = {s.name: s for s in build.package_specs()}
    assert set(specs) == {f.name for f in manifest().functions} | {"topic-bootstrap"}
    for function in manifest().functions:
        spec = specs[function.name]
        assert spec.project_dir == ROOT / function.package
        assert spec.handler == function.handler
        assert build.project_name(spec.project_dir).startswith("aipx-")
    assert specs["strategy"].handler_module_path == "aipx_strategy/handler.py"


def test_bad_handler_and_unknown_project_are_clear_errors(build: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(build.BuildError, match=r"is not 'module\.function'"):
        _ = build.PackageSpec(name="x", project_dir=tmp_path, handler="handler").handler_module_path
    with pytest.raises(build.BuildError, match=r"has no pyproject\.toml"):
        build.project_name(tmp_path)


def test_exported_requirements_are_split_into_workspace_members_and_pinned_wheels(build: ModuleType) -> None:
    local, third_party = build.split_requirements(
        "./lambdas/strategy\n./libs/aipx\n# comment\naiokafka==0.14.0\n"
        "async-timeout==5.0.1 ; python_version < '3.11'\n"
    )
    assert local == [ROOT / "lambdas" / "strategy", ROOT / "libs" / "aipx"]
    assert third_party == ["aiokafka==0.14.0", "async-timeout==5.0.1 ; python_version < '3.11'"]


def test_zips_are_reproducible(build: ModuleType, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "mod.py").write_text("X = 1\n")
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build.write_zip(tree, first)
    (tree / "pkg" / "mod.py").touch()  # a new mtime must not change the package
    build.write_zip(tree, second)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_building_the_topic_bootstrap_package(build: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    assert build.main(["topic-bootstrap", "--out", str(out)]) == 0
    package = out / "topic-bootstrap.zip"
    with zipfile.ZipFile(package) as zf:
        names = set(zf.namelist())
    assert "aipx_topic_bootstrap.py" in names  # the handler module
    assert "aipx/kafka/admin.py" in names  # the workspace library it runs
    assert "aipx/catalog/topics.yaml" in names  # with its package data
    assert any(n.startswith("aiokafka/") for n in names)  # and the locked third-party dependencies
    # binary wheels for the Lambda runtime (CPython 3.12 on x86_64 Linux), whatever machine builds them
    assert any(n.startswith("pydantic_core/") and "cpython-312-x86_64-linux-gnu" in n for n in names)
    assert not any("__pycache__" in n or n.endswith("direct_url.json") for n in names)
