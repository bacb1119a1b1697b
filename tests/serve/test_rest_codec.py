"""The REST wire codec alone, against tritonclient.http's own encoder and decoder
(``generate_request_body`` / ``parse_response_body``: NVIDIA's implementation of the same
protocol): every datatype, shapes including empty ones, JSON and binary form, in both
directions; and arbitrary JSON in every field only ever gives ``InvalidRequest``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgekit.serve.protocol import DATATYPES, InferResponse, InferTensor, InvalidRequest
from edgekit.serve.rest import decode_infer_request, encode_infer_response

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def tensors(draw):
    datatype = draw(st.sampled_from(sorted(DATATYPES)))
    dtype = DATATYPES[datatype]
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    elements = None
    if dtype.kind == "f":  # JSON cannot carry NaN/inf portably; binary can, but compare simply
        elements = st.floats(-1e4, 1e4, width=dtype.itemsize * 8)
    return datatype, draw(hnp.arrays(dtype, shape, elements=elements))


@FAST
@given(t=tensors(), binary=st.booleans(), request_id=st.text(max_size=8))
def test_requests_from_tritonclient_decode_to_the_same_arrays(t, binary, request_id):
    datatype, x = t
    inp = triton.InferInput("in", list(x.shape), datatype)
    inp.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("out", binary_data=not binary)
    body, header_length = triton.InferenceServerClient.generate_request_body([inp], [out], request_id=request_id)
    req, all_binary = decode_infer_request(body, None if header_length is None else str(header_length))
    (got,) = req.inputs
    assert (got.name, got.datatype, got.shape) == ("in", datatype, x.shape)
    assert got.data.dtype == x.dtype and np.array_equal(got.data, x)
    assert req.id == request_id and req.outputs == ["out"] and not all_binary
    assert req.binary_outputs == (set() if binary else {"out"})


@FAST
@given(t=tensors(), binary=st.booleans(), request_id=st.text(max_size=8))
def test_responses_parse_in_tritonclient_to_the_same_arrays(t, binary, request_id):
    datatype, y = t
    resp = InferResponse("m", "3", [InferTensor("out", datatype, y.shape, y)], id=request_id)
    body, headers = encode_infer_response(resp, set(), binary)
    result = triton.InferenceServerClient.parse_response_body(
        body, header_length=int(headers["inference-header-content-length"]) if binary else None)
    got = result.as_numpy("out")
    assert got.dtype == y.dtype and got.shape == y.shape and np.array_equal(got, y)
    meta = result.get_response()
    assert (meta["model_name"], meta["model_version"]) == ("m", "3")
    assert meta.get("id", "") == request_id


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                        max_size=3), max_leaves=12)


@FAST
@given(name=json_values, datatype=st.one_of(json_values, st.sampled_from(sorted(DATATYPES))),
       shape=st.one_of(json_values, st.lists(st.integers(-2, 3), max_size=3)), data=json_values,
       params=json_values, outputs=json_values, top=json_values)
def test_any_json_is_decoded_or_refused_with_invalid_request(name, datatype, shape, data, params, outputs, top):
    doc = {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data, "parameters": params}],
           "outputs": outputs, "parameters": top}
    try:
        req, _ = decode_infer_request(json.dumps(doc).encode(), None)
    except InvalidRequest as exc:
        assert str(exc)
    else:
        (t,) = req.inputs
        assert t.data.shape == t.shape and t.data.dtype == DATATYPES[t.datatype]


@pytest.mark.parametrize("data,message", [
    ([[1, 2], [3]], "not a regular (non-ragged) array of numbers"),
    ([True, False, 1, 0], "must hold true/false values"),
    ([2 ** 70] * 4, "must hold numbers"),
])
def test_json_data_refusals(data, message):
    datatype = "BOOL" if data[0] is True else "INT64"
    doc = {"inputs": [{"name": "x", "datatype": datatype, "shape": [4], "data": data}]}
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_infer_request(json.dumps(doc).encode(), None)
