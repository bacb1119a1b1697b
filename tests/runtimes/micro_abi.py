"""The C API of runtimes/micro as data: struct layouts, function signatures, and a
kernel call ("KernelCall") that the host tests run through ctypes and the QEMU tests
write out as C.

Every struct of kernels.h holds int32_t fields only (some of them arrays of 4), so a
struct is described by its field names in order; test_micro_library checks that this
table matches the header.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np

# struct name -> [(field, array length or 0)], in declaration order
STRUCTS: dict[str, list[tuple[str, int]]] = {
    "ek_dims4": [("n", 0), ("h", 0), ("w", 0), ("c", 0)],
    "ek_strides4": [("n", 0), ("h", 0), ("w", 0), ("c", 0)],
    "ek_conv_params": [("stride_h", 0), ("stride_w", 0), ("dilation_h", 0), ("dilation_w", 0),
                       ("pad_top", 0), ("pad_left", 0), ("input_offset", 0),
                       ("output_offset", 0), ("act_min", 0), ("act_max", 0)],
    "ek_depthwise_params": [("stride_h", 0), ("stride_w", 0), ("dilation_h", 0),
                            ("dilation_w", 0), ("pad_top", 0), ("pad_left", 0),
                            ("depth_multiplier", 0), ("input_offset", 0), ("output_offset", 0),
                            ("act_min", 0), ("act_max", 0)],
    "ek_fc_params": [("input_offset", 0), ("filter_offset", 0), ("output_offset", 0),
                     ("act_min", 0), ("act_max", 0), ("per_channel", 0)],
    "ek_conv_packed_params": [("stride_h", 0), ("stride_w", 0), ("dilation_h", 0),
                              ("dilation_w", 0), ("pad_top", 0), ("pad_left", 0),
                              ("input_zero_point", 0), ("output_offset", 0), ("act_min", 0),
                              ("act_max", 0), ("fast_requant", 0), ("reverse", 0)],
    "ek_fc_packed_params": [("output_offset", 0), ("act_min", 0), ("act_max", 0),
                            ("per_channel", 0), ("fast_requant", 0)],
    "ek_pool_params": [("stride_h", 0), ("stride_w", 0), ("filter_h", 0), ("filter_w", 0),
                       ("pad_top", 0), ("pad_left", 0), ("act_min", 0), ("act_max", 0)],
    "ek_add_params": [("input1_offset", 0), ("input2_offset", 0), ("left_shift", 0),
                      ("input1_multiplier", 0), ("input1_shift", 0),
                      ("input2_multiplier", 0), ("input2_shift", 0),
                      ("output_multiplier", 0), ("output_shift", 0), ("output_offset", 0),
                      ("act_min", 0), ("act_max", 0)],
    "ek_mul_params": [("input1_offset", 0), ("input2_offset", 0), ("output_multiplier", 0),
                      ("output_shift", 0), ("output_offset", 0), ("act_min", 0), ("act_max", 0)],
    "ek_pad_params": [("before", 4), ("after", 4), ("value", 0)],
    "ek_resize_bilinear_params": [("scale_10_h", 0), ("scale_10_w", 0), ("half_pixel_centers", 0)],
    "ek_mean_params": [("input_offset", 0), ("output_offset", 0), ("multiplier", 0),
                       ("shift", 0)],
    "ek_softmax_params": [("input_multiplier", 0), ("input_left_shift", 0), ("diff_min", 0)],
    "ek_sigmoid_params": [("input_offset", 0), ("input_multiplier", 0), ("input_left_shift", 0),
                          ("input_range_radius", 0)],
    "ek_requant_params": [("input_offset", 0), ("output_offset", 0), ("multiplier", 0),
                          ("shift", 0), ("act_min", 0), ("act_max", 0)],
    "ek_batch_matmul_params": [("lhs_offset", 0), ("rhs_offset", 0), ("output_offset", 0),
                               ("multiplier", 0), ("shift", 0), ("adj_x", 0), ("adj_y", 0)],
    "ek_slice_params": [("begin", 4), ("stride", 4), ("size", 4)],
    "ek_gather_params": [("batch_size", 0), ("outer_size", 0), ("axis_size", 0), ("inner_size", 0),
                         ("num_indices", 0)],
    "ek_prelu_params": [("input_offset", 0), ("alpha_offset", 0), ("output_offset", 0),
                        ("output_multiplier_1", 0), ("output_shift_1", 0),
                        ("output_multiplier_2", 0), ("output_shift_2", 0)],
    "ek_lstm_params": [("batches", 0), ("steps", 0), ("input_size", 0), ("hidden", 0), ("time_major", 0),
                       ("input_offset", 0), ("hidden_offset", 0), ("output_offset", 0),
                       ("input_mult", 4), ("input_shift", 4), ("recurrent_mult", 4), ("recurrent_shift", 4),
                       ("forget_mult", 0), ("forget_shift", 0), ("input_gate_mult", 0), ("input_gate_shift", 0),
                       ("output_mult", 0), ("output_shift", 0), ("cell_tanh_multiplier", 0),
                       ("cell_tanh_shift", 0), ("use_clip", 0), ("cell_clip", 0)],
    "ek_svdf_params": [("batches", 0), ("input_size", 0), ("features", 0), ("rank", 0), ("input_offset", 0),
                       ("feature_mult", 0), ("feature_shift", 0), ("output_mult", 0), ("output_shift", 0),
                       ("output_offset", 0)],
}

# Argument kinds: "S:<struct>" pointer to a struct, "i32" / "f32" scalars,
# "A:<ctype>" const array (NULL allowed), "P" const int8_t *const * (array of arrays),
# "O:<ctype>" the output buffer, "Q" int8_t *const * (several int8 outputs: the call's
# argument is the list of their byte sizes; they are consecutive parts of ``expected``),
# "W:<ctype>" a work buffer the kernel may use (the call's argument is its size in bytes).
# The arguments of the elementwise binaries after their params struct.
_BROADCAST_WALK = ["S:ek_dims4", "A:int8_t", "S:ek_strides4", "A:int8_t", "S:ek_strides4", "O:int8_t"]
FUNCTIONS: dict[str, list[str]] = {
    "ek_conv2d_s8": ["S:ek_conv_params", "A:int32_t", "A:int32_t", "S:ek_dims4", "A:int8_t",
                     "S:ek_dims4", "A:int8_t", "A:int32_t", "S:ek_dims4", "O:int8_t"],
    "ek_depthwise_conv2d_s8": ["S:ek_depthwise_params", "A:int32_t", "A:int32_t", "S:ek_dims4",
                               "A:int8_t", "S:ek_dims4", "A:int8_t", "A:int32_t", "S:ek_dims4",
                               "O:int8_t"],
    "ek_fully_connected_s8": ["S:ek_fc_params", "A:int32_t", "A:int32_t", "i32", "i32", "i32",
                              "A:int8_t", "A:int8_t", "A:int32_t", "O:int8_t"],
    "ek_conv2d_packed_s8": ["S:ek_conv_packed_params", "A:int32_t", "A:int32_t", "S:ek_dims4",
                            "A:int8_t", "S:ek_dims4", "A:int8_t", "A:int32_t", "S:ek_dims4",
                            "O:int8_t", "W:int16_t"],
    "ek_fully_connected_packed_s8": ["S:ek_fc_packed_params", "A:int32_t", "A:int32_t", "i32",
                                     "i32", "i32", "A:int8_t", "A:int8_t", "A:int32_t",
                                     "O:int8_t"],
    "ek_avg_pool2d_s8": ["S:ek_pool_params", "S:ek_dims4", "A:int8_t", "S:ek_dims4", "O:int8_t"],
    "ek_max_pool2d_s8": ["S:ek_pool_params", "S:ek_dims4", "A:int8_t", "S:ek_dims4", "O:int8_t"],
    "ek_add_s8": ["S:ek_add_params", "S:ek_dims4", "A:int8_t", "S:ek_strides4", "A:int8_t",
                  "S:ek_strides4", "O:int8_t"],
    "ek_sub_s8": ["S:ek_add_params", "S:ek_dims4", "A:int8_t", "S:ek_strides4", "A:int8_t",
                  "S:ek_strides4", "O:int8_t"],
    "ek_mul_s8": ["S:ek_mul_params", "S:ek_dims4", "A:int8_t", "S:ek_strides4", "A:int8_t",
                  "S:ek_strides4", "O:int8_t"],
    "ek_pad_s8": ["S:ek_pad_params", "S:ek_dims4", "A:int8_t", "O:int8_t"],
    "ek_resize_nearest_s8": ["S:ek_dims4", "A:int32_t", "A:int32_t", "S:ek_dims4", "A:int8_t", "O:int8_t"],
    "ek_resize_bilinear_s8": ["S:ek_resize_bilinear_params", "S:ek_dims4", "S:ek_dims4", "A:int8_t",
                              "O:int8_t"],
    "ek_transpose_conv_s8": ["S:ek_conv_params", "A:int32_t", "A:int32_t", "S:ek_dims4", "A:int8_t",
                             "S:ek_dims4", "A:int8_t", "A:int32_t", "S:ek_dims4", "O:int8_t"],
    "ek_concatenation_s8": ["i32", "P", "A:int32_t", "i32", "i32", "O:int8_t"],
    "ek_transpose_s8": ["S:ek_dims4", "A:int32_t", "A:int8_t", "O:int8_t"],
    "ek_slice_s8": ["S:ek_slice_params", "S:ek_dims4", "A:int8_t", "O:int8_t"],
    "ek_split_s8": ["i32", "Q", "A:int32_t", "i32", "i32", "A:int8_t"],
    "ek_gather_s8": ["S:ek_gather_params", "A:int32_t", "A:int8_t", "O:int8_t"],
    "ek_depth_to_space_s8": ["S:ek_dims4", "i32", "A:int8_t", "O:int8_t"],
    "ek_space_to_depth_s8": ["S:ek_dims4", "i32", "A:int8_t", "O:int8_t"],
    "ek_cast_s8_f32": ["i32", "A:int8_t", "O:float"],
    "ek_cast_f32_s8": ["i32", "A:float", "O:int8_t"],
    "ek_mean_s8": ["S:ek_mean_params", "S:ek_dims4", "i32", "A:int8_t", "O:int8_t"],
    "ek_reduce_max_s8": ["S:ek_dims4", "i32", "A:int8_t", "O:int8_t"],
    "ek_arg_min_max_s8": ["i32", "i32", "i32", "i32", "A:int8_t", "O:int32_t"],
    "ek_l2_normalization_s8": ["i32", "i32", "i32", "A:int8_t", "O:int8_t"],
    "ek_batch_matmul_s8": ["S:ek_batch_matmul_params", "S:ek_dims4", "A:int8_t", "S:ek_dims4", "A:int8_t",
                           "S:ek_dims4", "O:int8_t"],
    "ek_softmax_s8": ["S:ek_softmax_params", "i32", "i32", "A:int8_t", "O:int8_t"],
    "ek_logistic_s8": ["S:ek_sigmoid_params", "i32", "A:int8_t", "O:int8_t"],
    "ek_tanh_s8": ["S:ek_sigmoid_params", "i32", "A:int8_t", "O:int8_t"],
    "ek_relu_s8": ["S:ek_requant_params", "i32", "A:int8_t", "O:int8_t"],
    "ek_relu6_s8": ["i32", "i32", "i32", "A:int8_t", "O:int8_t"],
    "ek_quantize_f32_s8": ["f32", "i32", "i32", "A:float", "O:int8_t"],
    "ek_requantize_s8": ["S:ek_requant_params", "i32", "A:int8_t", "O:int8_t"],
    "ek_dequantize_s8_f32": ["f32", "i32", "i32", "A:int8_t", "O:float"],
    "ek_lut_s8": ["A:int8_t", "i32", "A:int8_t", "O:int8_t"],
    "ek_maximum_s8": ["S:ek_dims4", "A:int8_t", "S:ek_strides4", "A:int8_t", "S:ek_strides4", "O:int8_t"],
    "ek_minimum_s8": ["S:ek_dims4", "A:int8_t", "S:ek_strides4", "A:int8_t", "S:ek_strides4", "O:int8_t"],
    "ek_prelu_s8": ["S:ek_prelu_params"] + _BROADCAST_WALK,
    "ek_squared_difference_s8": ["S:ek_add_params"] + _BROADCAST_WALK,
    "ek_div_s8": ["S:ek_mul_params"] + _BROADCAST_WALK,
    "ek_lstm_s8": ["S:ek_lstm_params", "A:int8_t", "A:int8_t", "A:int8_t", "A:int32_t", "O:int8_t"],
    "ek_svdf_s8": ["S:ek_svdf_params", "A:int8_t", "A:int8_t", "A:int32_t", "A:int32_t", "O:int8_t"],
}

NP_DTYPE = {"int8_t": np.int8, "int32_t": np.int32, "float": np.float32}
CTYPE = {"int8_t": ctypes.c_int8, "int32_t": ctypes.c_int32, "float": ctypes.c_float}


@dataclass
class Struct:
    name: str
    values: dict  # field -> int, or list of 4 ints for array fields


@dataclass
class KernelCall:
    """One call of a kernel with its inputs, and the bytes it must produce."""

    name: str  # for reports, e.g. "conv2d[3]"
    function: str
    args: list  # one per signature entry except the output: Struct, np.ndarray, None, int,
    #             float, or a list of arrays for "P"
    expected: np.ndarray  # int8 or float32
    notes: dict = field(default_factory=dict)  # what the case exercises (for reports)

    def check(self) -> None:
        sig = FUNCTIONS[self.function]
        inputs = [k for k in sig if not k.startswith("O:")]  # "Q" takes the output sizes
        if len(inputs) != len(self.args):
            raise AssertionError(
                f"{self.function} takes {len(inputs)} inputs, got {len(self.args)}")
        out_ctype = next((k for k in sig if k.startswith("O:")), "O:int8_t")[2:]
        if self.expected.dtype != NP_DTYPE[out_ctype]:
            raise AssertionError(
                f"{self.function} writes {out_ctype}, expected is {self.expected.dtype}")


def dims4(shape) -> Struct:
    n, h, w, c = (int(v) for v in shape)
    return Struct("ek_dims4", {"n": n, "h": h, "w": w, "c": c})


# ---------------------------------------------------------------------------- ctypes


def _ctypes_struct(name: str):
    fields = [(f, ctypes.c_int32 * k if k else ctypes.c_int32) for f, k in STRUCTS[name]]
    return type(name, (ctypes.Structure,), {"_fields_": fields})


CSTRUCTS = {name: _ctypes_struct(name) for name in STRUCTS}


def _argtype(kind: str):
    if kind.startswith("S:"):
        return ctypes.POINTER(CSTRUCTS[kind[2:]])
    if kind == "i32":
        return ctypes.c_int32
    if kind == "f32":
        return ctypes.c_float
    if kind in ("P", "Q"):
        return ctypes.POINTER(ctypes.c_void_p)
    return ctypes.c_void_p  # arrays and the output


def bind(lib: ctypes.CDLL) -> None:
    """Set argtypes / restype of every kernel of ``lib``."""
    for fn, sig in FUNCTIONS.items():
        f = getattr(lib, fn)
        f.argtypes = [_argtype(k) for k in sig]
        f.restype = None


CANARY = 0x5A
GUARD = 32  # bytes after the output that must stay untouched


def call(lib: ctypes.CDLL, kc: KernelCall) -> np.ndarray:
    """Run ``kc`` through ctypes; returns the output (raises if the kernel wrote past it)."""
    kc.check()
    keep = []  # owners of the memory the pointers refer to
    cargs = []
    it = iter(kc.args)
    out = None
    for kind in FUNCTIONS[kc.function]:
        if kind.startswith("O:"):
            nbytes = kc.expected.nbytes
            out = np.full(nbytes + GUARD, CANARY, dtype=np.uint8)
            cargs.append(out.ctypes.data)
            continue
        a = next(it)
        if kind.startswith("W:"):
            work = np.zeros(max(int(a), 1) + 8, dtype=np.uint8)
            keep.append(work)
            cargs.append(work.ctypes.data + (-work.ctypes.data) % 8)
            continue
        if kind == "Q":
            out = np.full(kc.expected.nbytes + GUARD, CANARY, dtype=np.uint8)
            starts = np.concatenate([[0], np.cumsum(a)[:-1]]).astype(int)
            ptrs = (ctypes.c_void_p * len(a))(*[out.ctypes.data + int(s) for s in starts])
            keep.append(ptrs)
            cargs.append(ctypes.cast(ptrs, ctypes.POINTER(ctypes.c_void_p)))
            continue
        if kind.startswith("S:"):
            st = CSTRUCTS[kind[2:]]()
            for f, k in STRUCTS[kind[2:]]:
                v = a.values[f]
                if k:
                    getattr(st, f)[:] = [int(x) for x in v]
                else:
                    setattr(st, f, int(v))
            keep.append(st)
            cargs.append(ctypes.pointer(st))
        elif kind in ("i32", "f32"):
            cargs.append(a)
        elif kind == "P":
            arrs = [np.ascontiguousarray(x, dtype=np.int8) for x in a]
            ptrs = (ctypes.c_void_p * len(arrs))(*[x.ctypes.data for x in arrs])
            keep += [arrs, ptrs]
            cargs.append(ctypes.cast(ptrs, ctypes.POINTER(ctypes.c_void_p)))
        else:
            if a is None:
                cargs.append(None)
            else:
                arr = np.ascontiguousarray(a, dtype=NP_DTYPE[kind[2:]])
                keep.append(arr)
                cargs.append(arr.ctypes.data)
    getattr(lib, kc.function)(*cargs)
    if np.any(out[kc.expected.nbytes:] != CANARY):
        raise AssertionError(f"{kc.name}: {kc.function} wrote past the end of its output")
    return out[:kc.expected.nbytes].view(kc.expected.dtype).reshape(kc.expected.shape)
