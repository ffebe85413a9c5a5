"""Build each Lambda deployment package as a zip with its dependencies, for the Lambda runtime.

    uv run python scripts/build_lambdas.py                    # every function + topic-bootstrap
    uv run python scripts/build_lambdas.py strategy recorder  # only these
    uv run python scripts/build_lambdas.py --out dist/lambda --runtime python3.12

Functions come from the function manifest (libs/aipx/src/aipx/catalog/functions.yaml, `package`, `handler`);
`topic-bootstrap` is the infrastructure function that creates the topic catalogue on MSK. For each one:

1. `uv export --package <project> --no-dev --frozen`: the locked dependency set of the project;
2. third-party packages: `uv pip install --no-deps --only-binary :all: --python-platform <manylinux x86_64>
   --target ...` (binary wheels for the Lambda runtime, never the build machine's platform);
3. workspace members (aipx, the function's own project): built as wheels with `uv build`, installed the same
   way;
   A package with the strategy engine (aipx-strategy) also gets every strategy plug-in installed in the
   environment running this script (a distribution with `aipx.strategies` entry points, see
   examples/strategy-plugin): built from its source directory when it was installed from one, else its
   `name==version` from the index; so the live function runs the strategies the backtester ran;
4. the handler module is checked to be inside the package, size limits are checked, and the tree is zipped
   deterministically (sorted entries, fixed timestamps), so an unchanged build keeps the same hash and
   Terraform does not redeploy it.

The zips land in dist/lambda/<name>.zip, where Terraform (var.lambda_package_dir) and the deploy workflow
read them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import distributions
from pathlib import Path
from urllib.parse import unquote, urlparse

from aipx.functions import load_manifest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_FILE = ROOT / "libs" / "aipx" / "src" / "aipx" / "catalog" / "functions.yaml"
BOOTSTRAP_NAME = "topic-bootstrap"
BOOTSTRAP_HANDLER_FILE = ROOT / "infrastructure" / "lambda" / "topic_bootstrap" / "aipx_topic_bootstrap.py"

# Lambda's Python runtimes: python3.11 runs on Amazon Linux 2 (glibc 2.26, manylinux2014 wheels only),
# python3.12/3.13 on AL2023 (glibc 2.34). The default is python3.12: some locked dependencies (cramjam, via
# aiokafka) ship manylinux_2_28 wheels only, which python3.11's runtime cannot load.
PLATFORMS = {
    "python3.11": "x86_64-manylinux2014",
    "python3.12": "x86_64-manylinux_2_28",
    "python3.13": "x86_64-manylinux_2_28",
}
DEFAULT_RUNTIME = "python3.12"
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024  # Lambda's limit for a function and its layers, unzipped
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(RuntimeError):
    """A package could not be built; the message says which and why."""


@dataclass(frozen=True)
class PackageSpec:
    """What goes into one deployment package."""

    name: str
    project_dir: Path  # the uv workspace member whose locked dependencies are packaged
    handler: str  # module.function
    extra_files: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def handler_module_path(self) -> str:
        """Path of the handler's module inside the zip, e.g. aipx_strategy/handler.py."""
        module, _, _function = self.handler.rpartition(".")
        if not module:
            raise BuildError(f"{self.name}: handler {self.handler!r} is not 'module.function'")
        return module.replace(".", "/") + ".py"


def package_specs(manifest_file: Path = MANIFEST_FILE) -> list[PackageSpec]:
    """Every function of the manifest, plus the topic bootstrap."""
    specs = [
        PackageSpec(name=f.name, project_dir=ROOT / f.package, handler=f.handler)
        for f in load_manifest(manifest_file).functions
    ]
    specs.append(
        PackageSpec(
            name=BOOTSTRAP_NAME,
            project_dir=ROOT / "libs" / "aipx",
            handler="aipx_topic_bootstrap.handler",
            extra_files=(BOOTSTRAP_HANDLER_FILE,),
        )
    )
    return specs


def project_name(project_dir: Path) -> str:
    """[project].name of a workspace member."""
    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        raise BuildError(f"{project_dir} has no pyproject.toml")
    name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
    if not isinstance(name, str):
        raise BuildError(f"{pyproject} has no [project].name")
    return name


def _run(cmd: Sequence[str], *, cwd: Path = ROOT) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def split_requirements(exported: str) -> tuple[list[Path], list[str]]:
    """`uv export --no-editable` output -> (workspace member paths, third-party requirement lines)."""
    local: list[Path] = []
    third_party: list[str] = []
    for raw in exported.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("./", "../", "/")) or line.startswith("-e "):
            local.append((ROOT / line.removeprefix("-e ").strip()).resolve())
        else:
            third_party.append(line)
    return local, third_party


def export_requirements(project: str) -> tuple[list[Path], list[str]]:
    """The project's locked runtime dependency set."""
    exported = _run(
        [
            "uv",
            "export",
            "--package",
            project,
            "--no-dev",
            "--frozen",
            "--no-hashes",
            "--no-editable",
            "--no-header",
            "--no-annotate",
        ]
    )
    return split_requirements(exported)


STRATEGY_GROUP = "aipx.strategies"
STRATEGY_PROJECT = "aipx-strategy"


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def strategy_plugins(exclude: Sequence[str] = ()) -> list[str | Path]:
    """Installed distributions with `aipx.strategies` entry points, except `exclude` (normalized project
    names): the source directory each was installed from, else a `name==version` requirement."""
    found: dict[str, str | Path] = {}
    skip = {_normalized(n) for n in (*exclude, STRATEGY_PROJECT)}
    for dist in distributions():
        name = _normalized(dist.metadata["Name"] or "")
        if name in skip or name in found or not any(ep.group == STRATEGY_GROUP for ep in dist.entry_points):
            continue
        direct = dist.read_text("direct_url.json")
        url = str(json.loads(direct).get("url", "")) if direct else ""
        source = Path(unquote(urlparse(url).path)) if url.startswith("file://") else None
        found[name] = (
            source if source is not None and source.is_dir() else f"{dist.metadata['Name']}=={dist.version}"
        )
    return [found[name] for name in sorted(found)]


def _pip_install(target: Path, runtime: str, args: Sequence[str]) -> None:
    _run(
        [
            "uv",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--python-platform",
            PLATFORMS[runtime],
            "--python-version",
            runtime.removeprefix("python"),
            "--target",
            str(target),
            *args,
        ]
    )


# Install metadata that records where (which temporary path) a package was installed from.
VOLATILE_METADATA = ("direct_url.json", "uv_cache.json")


def make_reproducible(tree: Path) -> None:
    """Drop bytecode caches and install-location metadata so equal inputs give byte-equal packages."""
    for cache in list(tree.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    for dist_info in tree.glob("*.dist-info"):
        for name in VOLATILE_METADATA:
            (dist_info / name).unlink(missing_ok=True)
        record = dist_info / "RECORD"
        if record.is_file():
            kept = [
                line
                for line in record.read_text().splitlines()
                if line.split(",", 1)[0].rsplit("/", 1)[-1] not in VOLATILE_METADATA
            ]
            record.write_text("\n".join(kept) + "\n")


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def write_zip(tree: Path, zip_path: Path) -> None:
    """Zip `tree` reproducibly: sorted entries, fixed timestamps and permissions."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=ZIP_EPOCH)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the permission bits are honoured
            zf.writestr(info, path.read_bytes())
    tmp.replace(zip_path)


def build_package(spec: PackageSpec, out_dir: Path, runtime: str, work: Path) -> Path:
    """Build one deployment package; returns the zip's path."""
    if runtime not in PLATFORMS:
        raise BuildError(f"unsupported runtime {runtime!r}; choose one of {', '.join(PLATFORMS)}")
    tree = work / spec.name
    wheels = work / f"{spec.name}-wheels"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    wheels.mkdir(parents=True, exist_ok=True)

    local, third_party = export_requirements(project_name(spec.project_dir))
    if third_party:
        requirements = work / f"{spec.name}-requirements.txt"
        requirements.write_text("\n".join(third_party) + "\n")
        _pip_install(tree, runtime, ["-r", str(requirements)])
    members = [project_name(m) for m in local]
    plugins = strategy_plugins(members) if STRATEGY_PROJECT in members else []
    for member in [*local, *(p for p in plugins if isinstance(p, Path))]:
        _run(["uv", "build", "--quiet", "--wheel", "--out-dir", str(wheels), str(member)])
    from_index = [p for p in plugins if isinstance(p, str)]
    if from_index:
        _pip_install(tree, runtime, from_index)
    built = sorted(wheels.glob("*.whl"))
    if built:
        _pip_install(tree, runtime, [str(w) for w in built])
    for extra in spec.extra_files:
        if not extra.is_file():
            raise BuildError(f"{spec.name}: {extra} is missing")
        shutil.copy2(extra, tree / extra.name)

    make_reproducible(tree)
    if not (tree / spec.handler_module_path).is_file():
        raise BuildError(
            f"{spec.name}: handler module {spec.handler_module_path} is not in the package "
            f"(handler {spec.handler!r} from functions.yaml)"
        )
    size = tree_size(tree)
    if size > MAX_UNZIPPED_BYTES:
        raise BuildError(f"{spec.name}: {size / 2**20:.0f} MiB unzipped exceeds Lambda's 250 MiB limit")

    zip_path = out_dir / f"{spec.name}.zip"
    write_zip(tree, zip_path)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build Lambda deployment packages (zip per function).")
    parser.add_argument("names", nargs="*", help="functions to build (default: all, plus topic-bootstrap)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "lambda", help="output directory")
    parser.add_argument("--runtime", choices=sorted(PLATFORMS), default=DEFAULT_RUNTIME)
    args = parser.parse_args(argv)

    specs = package_specs()
    known = {s.name for s in specs}
    unknown = sorted(set(args.names) - known)
    if unknown:
        parser.error(f"unknown function(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    selected = [s for s in specs if not args.names or s.name in args.names]

    out_dir: Path = args.out.resolve()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="aipx-lambda-") as tmp:
        for spec in selected:
            started = time.monotonic()
            try:
                zip_path = build_package(spec, out_dir, args.runtime, Path(tmp))
            except BuildError as exc:
                failures += 1
                print(f"FAILED {spec.name}: {exc}", file=sys.stderr)
                continue
            print(
                f"built {zip_path.relative_to(ROOT) if zip_path.is_relative_to(ROOT) else zip_path} "
                f"({zip_path.stat().st_size / 2**20:.1f} MiB, {time.monotonic() - started:.1f} s)"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
