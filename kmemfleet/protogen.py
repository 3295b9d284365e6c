"""Generate the Python wire code from proto/ (used by `make proto` and the staleness test).

Runs grpcio-tools' bundled protoc, so the output depends only on the pinned
grpcio-tools version and the .proto files, never on a system protoc.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"


def generate(out_package_dir: Path) -> list[Path]:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto into out_package_dir."""
    from grpc_tools import protoc  # dev-only dependency

    out_root = out_package_dir.resolve().parent.parent  # .../kmemfleet/v1 -> ...
    protos = sorted(PROTO_ROOT.glob("kmemfleet/v1/*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    init = out_package_dir / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated wire code for proto/kmemfleet/v1 (make proto)."""\n')
    return sorted(out_package_dir.glob("*_pb2*.py*"))


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("kmemfleet/v1")
    if target.resolve().parts[-2:] != ("kmemfleet", "v1"):
        raise SystemExit("the output folder must end in kmemfleet/v1 (import paths depend on it)")
    target.mkdir(parents=True, exist_ok=True)
    for path in generate(target):
        print(path)


if __name__ == "__main__":
    main()
