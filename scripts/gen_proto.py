"""Generate the Python code (messages, gRPC stubs, type stubs) for proto/ into libs/aipx/src.

One command: `uv run python scripts/gen_proto.py`. `--check` regenerates into a temporary directory and
fails (exit 1) listing the files that differ when the committed code is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "libs" / "aipx" / "src"
GENERATED_PACKAGE = Path("aipx") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files() -> list[Path]:
    """Every .proto of the versioned package, sorted for a stable run."""
    return sorted((PROTO_ROOT / GENERATED_PACKAGE).glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) with the gRPC and mypy-protobuf plugins into out_root."""
    out_dir = out_root / GENERATED_PACKAGE
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    (out_dir / "__init__.py").write_text(
        '"""Generated from proto/aipx/v1 by scripts/gen_proto.py. Do not edit."""\n'
    )
    return sorted(
        p for p in out_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES) or p.name == "__init__.py"
    )


def stale_files(committed_root: Path, fresh_root: Path) -> list[str]:
    """Names of generated files that are missing, extra or different in committed_root versus fresh_root."""
    committed = committed_root / GENERATED_PACKAGE
    fresh = fresh_root / GENERATED_PACKAGE
    names = {p.name for p in fresh.iterdir()} | (
        {p.name for p in committed.iterdir() if p.is_file()} if committed.exists() else set()
    )
    problems = []
    for name in sorted(names):
        if name.endswith(".pyc") or name == "__pycache__":
            continue
        a, b = committed / name, fresh / name
        if not a.exists() or not b.exists() or not filecmp.cmp(a, b, shallow=False):
            problems.append(name)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed generated code is stale")
    parser.add_argument("--out", type=Path, default=OUT_ROOT, help="output root (default: libs/aipx/src)")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            problems = stale_files(args.out, Path(tmp))
        if problems:
            print(
                "generated protobuf code is stale; run `uv run python scripts/gen_proto.py`:", file=sys.stderr
            )
            for name in problems:
                print(f"  {GENERATED_PACKAGE / name}", file=sys.stderr)
            return 1
        print(f"generated protobuf code is up to date ({len(proto_files())} .proto files)")
        return 0
    out_dir = args.out / GENERATED_PACKAGE
    if out_dir.exists():
        for p in out_dir.iterdir():
            if p.is_file() and (p.name.endswith(GENERATED_SUFFIXES)):
                p.unlink()
        shutil.rmtree(out_dir / "__pycache__", ignore_errors=True)
    written = generate(args.out)
    print(f"generated {len(written)} files into {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
