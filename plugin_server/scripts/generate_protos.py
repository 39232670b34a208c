#!/usr/bin/env python3
"""Regenerate the gRPC stubs of the Kubernetes KMS plugin API from the .proto files.

    python plugin_server/scripts/generate_protos.py            # rewrite the committed stubs
    python plugin_server/scripts/generate_protos.py --out DIR  # write them under DIR (the staleness test)

The protos are compiled with the include root plugin_server/src, so the generated modules import each other
as `tke_kms_plugin.protos.*` and the proto packages stay exactly `v1beta1` and `v2` (kube-apiserver calls
"/v1beta1.KeyManagementService/..." and "/v2.KeyManagementService/...").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SRC_ROOT = Path(__file__).resolve().parent.parent / "src"
PROTO_DIR = Path("tke_kms_plugin") / "protos"
PROTO_FILES = ("kms_v1beta1.proto", "kms_v2.proto")


def generated_names() -> list[Path]:
    """The stub files the script writes, relative to the output root."""
    names = []
    for proto in PROTO_FILES:
        stem = proto.removesuffix(".proto")
        names += [PROTO_DIR / f"{stem}_pb2.py", PROTO_DIR / f"{stem}_pb2_grpc.py"]
    return names


def generate(out_root: Path) -> list[Path]:
    """Compile every proto into out_root; return the written files."""
    from grpc_tools import protoc  # noqa: PLC0415  (grpcio-tools is a dev dependency only)

    (out_root / PROTO_DIR).mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    for proto in PROTO_FILES:
        args = [
            "grpc_tools.protoc",
            f"-I{SRC_ROOT}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(PROTO_DIR / proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {proto}")
    return [out_root / name for name in generated_names()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=SRC_ROOT, help="output root (default: plugin_server/src)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
