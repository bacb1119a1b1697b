"""The OpenAPI 3.0 document of the daemon's REST API, served at ``/openapi.json`` and
checked in as ``docs/openapi.json`` (a test keeps the two equal).

Regenerate the checked-in copy after changing this file:

    python -m edgekit.serve.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    "400": "Malformed request, or a tensor name, datatype or shape the model does not take",
    "401": "Missing or wrong bearer token (only when the daemon has --token-file)",
    "404": "No such model or version",
    "413": "Request body over --max-request-bytes",
    "429": "The model's request queue is full: back off and retry",
    "503": "The model has no ready version (loading, rolled back, its board stopped answering, draining)",
    "504": "The request waited longer than its timeout",
}


def _errors(*codes: str) -> dict:
    return {c: {"description": _ERRORS[c], "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_params(version: bool) -> list:
    params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "Model name"}]
    if version:
        params.append({"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
                       "description": "Model version"})
    return params


_TENSOR_META = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}}}}

_DATATYPE = {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                                        "INT64", "FP16", "FP32", "FP64"]}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "ServerMetadata": {"type": "object", "required": ["name", "version", "extensions"], "properties": {
        "name": {"type": "string"}, "version": {"type": "string"},
        "extensions": {"type": "array", "items": {"type": "string"}}}},
    "ModelMetadata": {"type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
                      "properties": {
                          "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                          "platform": {"type": "string"},
                          "inputs": {"type": "array", "items": _TENSOR_META},
                          "outputs": {"type": "array", "items": _TENSOR_META}}},
    "RequestInput": {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": _DATATYPE,
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": {"type": "object", "properties": {
            "binary_data_size": {"type": "integer", "minimum": 0,
                                 "description": "Bytes of this input after the JSON header (binary extension)"}}},
        "data": {"description": "The values, flattened row-major or nested as the shape",
                 "type": "array", "items": {}}}},
    "RequestOutput": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"},
        "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}},
    "InferenceRequest": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {
            "binary_data_output": {"type": "boolean", "description": "Every output in binary form"},
            "timeout": {"type": "integer", "minimum": 1, "description": "Request timeout in microseconds"}}},
        "inputs": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/RequestInput"}},
        "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/RequestOutput"}}}},
    "ResponseOutput": {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": _DATATYPE, "shape": {"type": "array", "items": {"type": "integer"}},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
        "data": {"type": "array", "items": {}}}},
    "InferenceResponse": {"type": "object", "required": ["model_name", "model_version", "outputs"], "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/ResponseOutput"}}}},
    "RepositoryIndex": {"type": "array", "items": {"type": "object", "required": ["name", "version", "state"],
                                                   "properties": {
                                                       "name": {"type": "string"}, "version": {"type": "string"},
                                                       "state": {"type": "string",
                                                                 "enum": ["READY", "UNAVAILABLE", "LOADING"]},
                                                       "reason": {"type": "string"}}}},
    "ReloadResult": {"type": "object", "properties": {
        "loaded": {"type": "array", "items": {}}, "rolled_back": {"type": "array", "items": {}},
        "unchanged": {"type": "array", "items": {}}}},
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _health(what: str) -> dict:
    return {"get": {"summary": f"Server {what}", "security": [], "responses": {
        "200": _json({"type": "object"}, f"The server is {what}"),
        "400": _json(_ERROR, f"The server is not {what}")}}}


def _model_paths(version: bool) -> dict:
    base = "/v2/models/{name}" + ("/versions/{version}" if version else "")
    which = "a version of a model" if version else "a model (its active version)"
    return {
        base: {"get": {"summary": f"Metadata of {which}", "parameters": _path_params(version), "responses": {
            "200": _json(_ref("ModelMetadata"), "Model metadata"), **_errors("401", "404")}}},
        base + "/ready": {"get": {"summary": f"Readiness of {which}", "parameters": _path_params(version),
                                  "responses": {"200": _json({"type": "object"}, "Ready"),
                                                "400": _json(_ERROR, "Not ready"), **_errors("401", "404")}}},
        base + "/infer": {"post": {
            "summary": f"Run {which}",
            "description": "JSON tensors, or the binary tensor data extension: the body is the JSON header "
                           "(Inference-Header-Content-Length bytes) followed by each input with a "
                           "binary_data_size parameter, little-endian, row-major, in input order.",
            "parameters": [*_path_params(version), {
                "name": "Inference-Header-Content-Length", "in": "header", "required": False,
                "schema": {"type": "integer", "minimum": 0},
                "description": "Bytes of JSON before the binary tensor data"}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("InferenceRequest")},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {
                "200": {"description": "Outputs; with binary outputs the body is the JSON header "
                                       "(Inference-Header-Content-Length bytes) and then their raw bytes",
                        "content": {"application/json": {"schema": _ref("InferenceResponse")},
                                    "application/octet-stream": {"schema": {"type": "string",
                                                                            "format": "binary"}}}},
                **_errors("400", "401", "404", "413", "429", "503", "504")}}},
    }


def openapi_document() -> dict:
    """The document, built fresh (callers may keep or change it)."""
    paths = {
        "/v2/health/live": _health("live"),
        "/v2/health/ready": _health("ready"),
        "/v2": {"get": {"summary": "Server metadata", "responses": {
            "200": _json(_ref("ServerMetadata"), "Name, version and protocol extensions"), **_errors("401")}}},
        **_model_paths(False),
        **_model_paths(True),
        "/v2/repository/index": {"post": {
            "summary": "Every model version the daemon knows, with its state",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
            "responses": {"200": _json(_ref("RepositoryIndex"), "Model versions"),
                          **_errors("400", "401", "413")}}},
        "/v2/repository/reload": {"post": {
            "summary": "Rescan the model directories now (edgekit serve reload)",
            "responses": {"200": _json(_ref("ReloadResult"), "What the rescan changed"), **_errors("401")}}},
        "/v2/repository/models/{name}/load": {"post": {
            "summary": "Rescan the model directories, then answer whether the model has a ready version",
            "parameters": _path_params(False),
            "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": _json({"type": "object"}, "The model has a ready version"),
                          **_errors("400", "401", "404", "413", "503")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}, **_errors("401")}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": _json({"type": "object"}, "OpenAPI 3.0 document"), **_errors("401")}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "edgekit serve: Open Inference Protocol (KServe v2) REST API", "version": "2",
                 "description": "docs/serve.md. With --token-file, every endpoint but the health checks needs "
                                "Authorization: Bearer <token>."},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def main() -> None:
    json.dump(openapi_document(), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
