"""Seldon MLServer's custom model class serving an edgekit bundle, for bench/serve.py.

bench/serve.py writes the model-settings.json that names this class (implementation
``mlserver_model.BundleModel``, ``parameters.uri``: the bundle, ``parameters.extra``:
``{"engine_options": {...}}``) and starts ``mlserver start`` in its own venv
(bench/peers/mlserver.txt) with bench/peers and the repository on PYTHONPATH. The model
runs the bundle through edgekit.runtime, the same engine and options as every other
server of the benchmark, so only the server around it differs.
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

import edgekit.runtime as rt


class BundleModel(MLModel):
    async def load(self) -> bool:
        params = self.settings.parameters
        self.runtime_model = rt.open(params.uri, engine_options=(params.extra or {}).get("engine_options", {}))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {t.name: NumpyCodec.decode_input(t) for t in payload.inputs}
        outputs = [NumpyCodec.encode_output(name, value) for name, value in self.runtime_model.run(feeds).items()]
        return InferenceResponse(id=payload.id, model_name=self.name, outputs=outputs)
