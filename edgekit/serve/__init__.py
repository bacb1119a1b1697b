"""`edgekit serve`: the on-device inference daemon (docs/serve.md).

The parts, from the wire down:

- ``rest`` (Starlette on Uvicorn) and ``grpc_server`` (grpc.aio): the Open Inference
  Protocol's two wire forms, both translating to and from ``protocol``'s types and errors;
  ``daemon`` runs them in one asyncio loop (signals, sd_notify, drain);
- ``service``: ``InferenceService``, the one object the front ends call: request
  validation, the model's bounded queue, timeouts, health and metadata;
- ``registry``: which version of each model serves; loading beside the old version,
  self-test, atomic switch, rollback, serial-attached boards, the worker threads;
- ``repository``: the bundles in the served folders, taken only when complete and verified;
- ``state``: the served and rolled-back versions, written atomically, read on restart;
- ``metrics``: the Prometheus metrics of one service.

Device side: it imports ``edgekit.runtime``, ``edgekit.bundle`` and ``edgekit.device``,
never a model compiler (tests/test_layering.py). Python >= 3.10 (Starlette 1.x); the
runtime below it stays 3.8+.
"""
