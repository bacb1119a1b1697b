"""Regenerate the Python modules of edgekit's Open Inference Protocol gRPC definition.

    python tools/generate_oip_proto.py            # rewrites edgekit/serve/oip_proto/*_pb2*.py
    python tools/generate_oip_proto.py --out DIR  # writes them into DIR instead

grpcio-tools' protoc writes ``grpc_predict_v2_pb2.py`` and ``grpc_predict_v2_pb2_grpc.py``;
one line is then changed: the descriptors go into a descriptor pool of their own instead of
protobuf's process-wide default pool. The OIP fixes the message names (``inference.ModelInferRequest``
...), and tritonclient.grpc and KServe register the same names in the default pool: sharing
it would make importing both in one process fail with "duplicate symbol". The wire format
depends only on field numbers and the service's name, so a private pool changes nothing a
client sees. tests/serve/test_grpc_proto.py checks that the checked-in files equal a fresh run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO = Path("edgekit/serve/oip_proto/grpc_predict_v2.proto")  # relative to REPO: it names the import path
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")
DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
PRIVATE_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules into ``out_dir``; return their paths."""
    from grpc_tools import protoc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # protoc names output after the proto's path below -I; run it from the repo root so
        # the grpc module imports ``edgekit.serve.oip_proto.grpc_predict_v2_pb2``.
        args = ["grpc_tools.protoc", f"-I{REPO}", f"--python_out={tmp}", f"--grpc_python_out={tmp}",
                str(REPO / PROTO)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}")
        written = []
        for name in GENERATED:
            text = (Path(tmp) / PROTO.parent / name).read_text()
            if name.endswith("_pb2.py"):
                if text.count(DEFAULT_POOL) != 1:
                    raise RuntimeError(f"{name}: protoc's output no longer has one {DEFAULT_POOL!r} line")
                text = text.replace(DEFAULT_POOL, PRIVATE_POOL)
            (out_dir / name).write_text(text)
            written.append(out_dir / name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / PROTO.parent)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
