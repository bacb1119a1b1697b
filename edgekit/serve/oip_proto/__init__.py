"""The Open Inference Protocol's gRPC definition (``grpc_predict_v2.proto``) and the Python
modules grpcio-tools generates from it, checked in. Regenerate them with
``python tools/generate_oip_proto.py``; their descriptors live in a private descriptor pool so
that tritonclient or KServe, which define the same ``inference.*`` names, can be imported in
the same process."""
