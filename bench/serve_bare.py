"""The floor of bench/serve.py: a Starlette app on Uvicorn that does nothing but infer.

    python bench/serve_bare.py --bundle kws.ekb --port 8080 [--name kws]

It answers `GET /v2/health/ready` and `POST /v2/models/{name}/infer` with JSON tensors
(the Open Inference Protocol's JSON form), running the bundle through edgekit.runtime
inline in the event loop: no validation beyond what decoding needs, no queue, no
metrics, no versions. What a server costs beyond this is what its features cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_app(bundle: str, name: str, engine_options: dict):
    import numpy as np
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    import edgekit.runtime as rt

    model = rt.open(bundle, engine_options=engine_options)
    datatypes = {np.dtype(np.int8): "INT8", np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32"}
    spec = {s.name: s.dtype for s in model.inputs}

    async def ready(request):
        return Response(status_code=200)

    async def infer(request):
        body = json.loads(await request.body())
        feeds = {t["name"]: np.asarray(t["data"], dtype=spec[t["name"]]).reshape(t["shape"]) for t in body["inputs"]}
        outputs = model.run(feeds)
        return JSONResponse({"model_name": name, "id": body.get("id", ""),
                             "outputs": [{"name": k, "datatype": datatypes[v.dtype], "shape": list(v.shape),
                                          "data": v.ravel().tolist()} for k, v in outputs.items()]})

    return Starlette(routes=[Route("/v2/health/ready", ready),
                             Route(f"/v2/models/{name}/infer", infer, methods=["POST"])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="kws", help="model name in the URL")
    ap.add_argument("--engine-options", default="{}", help="JSON object passed to edgekit.runtime.open")
    args = ap.parse_args()
    import uvicorn

    app = build_app(args.bundle, args.name, json.loads(args.engine_options))
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
