"""Generate the Python gRPC stubs (with .pyi) from proto/ into convoy/v1/.

The one way stubs are made; the output is committed and tests/unit/test_stubs.py fails when it is
stale. Run: python scripts/gen_proto.py [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc  # dev dependency, only needed here

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="root to write convoy/v1/ under")
    ns = parser.parse_args()
    generate(ns.out)
    print(f"stubs written under {ns.out / 'convoy' / 'v1'}", file=sys.stderr)


if __name__ == "__main__":
    main()
