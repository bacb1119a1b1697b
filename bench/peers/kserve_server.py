"""KServe's Python ModelServer serving an edgekit bundle, for bench/serve.py.

Runs in its own venv (bench/peers/kserve.txt) with the repository on PYTHONPATH:

    python bench/peers/kserve_server.py --bundle kws.ekb --model_name kws --http_port 8080 \
        --enable_grpc false --enable_latency_logging false

The model class runs the bundle through edgekit.runtime, the same engine and options as
every other server of the benchmark, so only the server around it differs. Any other
option is KServe's own (its parser is the parent of this one).
"""

from __future__ import annotations

import argparse
import json
import logging

from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.numpy_codec import from_np_dtype

import edgekit.runtime as rt


class BundleModel(Model):
    def __init__(self, name: str, bundle: str, engine_options: dict):
        super().__init__(name)
        self.bundle = bundle
        self.engine_options = engine_options
        self.runtime_model = None
        self.load()

    def load(self) -> bool:
        self.runtime_model = rt.open(self.bundle, engine_options=self.engine_options)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feeds = {t.name: t.as_numpy() for t in payload.inputs}
        outputs = []
        for name, value in self.runtime_model.run(feeds).items():
            out = InferOutput(name=name, shape=list(value.shape), datatype=from_np_dtype(value.dtype))
            out.set_data_from_numpy(value, binary_data=False)
            outputs.append(out)
        # KServe 0.21 refuses (HTTP 500) a response without an id (toolchain notes).
        return InferResponse(response_id=payload.id or "0", model_name=self.name, infer_outputs=outputs)


def main() -> None:
    ap = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--engine-options", default="{}", help="JSON object passed to edgekit.runtime.open")
    args, _ = ap.parse_known_args()
    model = BundleModel(args.model_name, args.bundle, json.loads(args.engine_options))
    server = ModelServer()
    # No per-request log lines, as in every server of the benchmark.
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
