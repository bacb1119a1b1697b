/*
 * Model package checker and executor (format: docs/model-package.md).
 *
 * ek_pkg_open checks every field the executor later trusts, so a package that
 * passes can only make the kernels read its own bytes and the arena, and write the
 * arena: a bit flip that slips through the CRC, or a hostile package, is refused
 * with a reason instead of crashing the firmware.
 */
#include "ek_package.h"
#ifdef EDGEKIT_PROFILE
#include "ek_profile.h"
#endif

#include <string.h>

#include "edgekit/kernels.h"
#include "ek_crc32.h"
#include "ek_version.h"

/* Parameter words of each kind (concatenation: 4 + 2 per input; split: 4 + 2 per output). */
static const uint8_t kWords[EK_OP_KIND_COUNT] = {
    0,  /* unused */
    28, /* CONV_2D */
    29, /* DEPTHWISE_CONV_2D */
    15, /* FULLY_CONNECTED */
    18, /* AVERAGE_POOL_2D */
    18, /* MAX_POOL_2D */
    29, /* ADD */
    29, /* SUB */
    24, /* MUL */
    15, /* PAD */
    4,  /* CONCATENATION (minimum) */
    10, /* TRANSPOSE */
    11, /* MEAN */
    7,  /* SOFTMAX */
    7,  /* LOGISTIC */
    7,  /* TANH */
    9,  /* RELU */
    5,  /* RELU6 */
    9,  /* REQUANTIZE */
    5,  /* QUANTIZE */
    5,  /* DEQUANTIZE */
    3,  /* COPY */
    18, /* SLICE */
    4,  /* SPLIT (minimum) */
    8,  /* GATHER */
    7,  /* DEPTH_TO_SPACE */
    7,  /* SPACE_TO_DEPTH */
    3,  /* CAST int8 -> float32 */
    3,  /* CAST float32 -> int8 */
    12, /* RESIZE_NEAREST_NEIGHBOR */
    13, /* RESIZE_BILINEAR */
    28, /* TRANSPOSE_CONV */
    4,  /* LUT (HARD_SWISH, LEAKY_RELU, ABS, NEG, EXP, LOG, SQRT, RSQRT, GELU) */
    17, /* MAXIMUM */
    17, /* MINIMUM */
    24, /* PRELU */
    29, /* SQUARED_DIFFERENCE */
    24, /* DIV */
    39, /* UNIDIRECTIONAL_SEQUENCE_LSTM */
    15, /* SVDF */
    7,  /* REDUCE_MAX */
    6,  /* ARG_MAX / ARG_MIN */
    5,  /* L2_NORMALIZATION */
    22, /* BATCH_MATMUL */
};

#define MAX_DIM 65535
#define MAX_ELEMS 0x7FFFFFFFu

/* ------------------------------------------------------------------ checking */

typedef struct {
  const uint8_t *pkg;
  uint32_t data_start, data_end; /* constant region in the package */
  uint32_t arena;
  const uint8_t *w; /* the op's parameter words */
  ek_pkg_error *err;
  uint32_t op;
} vctx;

static int32_t word(const uint8_t *w, uint32_t i) {
  return (int32_t)ek_rd32(w + 4u * i);
}

static int fail(vctx *v, uint32_t reason, const char *message) {
  v->err->reason = reason;
  v->err->op = v->op;
  v->err->message = message;
  return -1;
}

static int in_range(int32_t x, int32_t lo, int32_t hi) {
  return x >= lo && x <= hi;
}

/* A reference to `bytes` bytes: in the arena, or (unless out) a constant. */
static int ref_ok(vctx *v, uint32_t ref, uint64_t bytes, uint32_t align, int out) {
  uint64_t off;
  if (ref == EK_REF_NONE || bytes == 0u) {
    return 0;
  }
  if (ref & EK_REF_CONST) {
    if (out) {
      return 0;
    }
    off = ref & ~EK_REF_CONST;
    if (off < v->data_start || off + bytes > v->data_end) {
      return 0;
    }
  } else {
    off = ref;
    if (off + bytes > v->arena) {
      return 0;
    }
  }
  return (off % align) == 0u;
}

static int in_ref(vctx *v, uint32_t i, uint64_t bytes) {
  return ref_ok(v, (uint32_t)word(v->w, i), bytes, 1, 0);
}

static int out_ref(vctx *v, uint32_t i, uint64_t bytes) {
  return ref_ok(v, (uint32_t)word(v->w, i), bytes, 1, 1);
}

/* Optional int32 constant vector (bias). */
static int opt_i32_ref(vctx *v, uint32_t i, uint64_t count) {
  const uint32_t ref = (uint32_t)word(v->w, i);
  return ref == EK_REF_NONE || ((ref & EK_REF_CONST) && ref_ok(v, ref, count * 4u, 4, 0));
}

/* int32 constant vector of shifts, each within [lo, hi]. */
static int shift_ref(vctx *v, uint32_t i, uint64_t count, int32_t lo, int32_t hi) {
  const uint32_t ref = (uint32_t)word(v->w, i);
  const uint8_t *s;
  uint64_t k;
  if (!(ref & EK_REF_CONST) || !ref_ok(v, ref, count * 4u, 4, 0)) {
    return 0;
  }
  s = v->pkg + (ref & ~EK_REF_CONST);
  for (k = 0; k < count; k++) {
    if (!in_range((int32_t)ek_rd32(s + 4u * k), lo, hi)) {
      return 0;
    }
  }
  return 1;
}

static int const_i32_ref(vctx *v, uint32_t i, uint64_t count) {
  const uint32_t ref = (uint32_t)word(v->w, i);
  return (ref & EK_REF_CONST) && ref_ok(v, ref, count * 4u, 4, 0);
}

/* Four dimensions at word i, each in [1, MAX_DIM]; *elems gets their product. */
static int dims_ok(vctx *v, uint32_t i, uint64_t *elems) {
  uint64_t n = 1;
  uint32_t k;
  for (k = 0; k < 4u; k++) {
    const int32_t d = word(v->w, i + k);
    if (!in_range(d, 1, MAX_DIM)) {
      return 0;
    }
    n *= (uint64_t)d;
  }
  *elems = n;
  return n <= MAX_ELEMS;
}

static int act_ok(int32_t lo, int32_t hi) {
  return in_range(lo, -128, 127) && in_range(hi, -128, 127) && lo <= hi;
}

static int offset_ok(int32_t off) {
  return in_range(off, -256, 256);
}

static int size_ok(int32_t n) {
  return in_range(n, 1, (int32_t)MAX_ELEMS);
}

/* Strides of a broadcast operand read through output dims at word d. */
static int strides_ok(vctx *v, uint32_t d, uint32_t s, int32_t elems) {
  uint64_t last = 0;
  uint32_t k;
  if (!size_ok(elems)) {
    return 0;
  }
  for (k = 0; k < 4u; k++) {
    const int32_t st = word(v->w, s + k);
    if (!in_range(st, 0, (int32_t)MAX_ELEMS)) {
      return 0;
    }
    last += (uint64_t)(word(v->w, d + k) - 1) * (uint64_t)st;
  }
  return last < (uint64_t)elems;
}

/* A window of `taps` taps (dilation dl) at stride st with `pad` before covers at
 * least one in-bounds element for every output position. */
static int windows_ok(int32_t in, int32_t out, int32_t taps, int32_t st, int32_t dl, int32_t pad) {
  const int64_t span = (int64_t)(taps - 1) * dl + 1;
  return pad < span && (int64_t)(out - 1) * st - pad < in;
}

static int check_conv(vctx *v, int depthwise) {
  const uint8_t *w = v->w;
  const uint32_t b = depthwise ? 11u : 10u; /* first dims word */
  uint64_t ni, nf, no;
  int32_t dm = 1;
  int32_t k;
  for (k = 0; k < 4; k++) {
    if (!in_range(word(w, (uint32_t)k), 1, 255)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "conv: stride or dilation out of range");
    }
  }
  if (!in_range(word(w, 4), 0, MAX_DIM) || !in_range(word(w, 5), 0, MAX_DIM)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "conv: padding out of range");
  }
  if (depthwise) {
    dm = word(w, 6);
    if (!in_range(dm, 1, 255)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "depthwise: depth multiplier out of range");
    }
  }
  if (!offset_ok(word(w, b - 4u)) || !offset_ok(word(w, b - 3u)) ||
      !act_ok(word(w, b - 2u), word(w, b - 1u))) {
    return fail(v, EK_PKG_E_OP_PARAMS, "conv: offsets or activation range invalid");
  }
  if (!dims_ok(v, b, &ni) || !dims_ok(v, b + 4u, &nf) || !dims_ok(v, b + 8u, &no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "conv: dimensions invalid");
  }
  /* dims: in n,h,w,c at b; filter at b+4; out at b+8 */
  if (word(w, b + 8u) != word(w, b)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "conv: batch mismatch");
  }
  if (depthwise) {
    if (word(w, b + 4u) != 1 || word(w, b + 7u) != word(w, b + 11u) ||
        (int64_t)word(w, b + 3u) * dm != word(w, b + 11u)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "depthwise: channel counts do not match");
    }
  } else if (word(w, b + 4u) != word(w, b + 11u) || word(w, b + 7u) != word(w, b + 3u)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "conv: channel counts do not match");
  }
  {
    const uint64_t cout = (uint64_t)word(w, b + 11u);
    const uint32_t r = b + 12u; /* references */
    if (!in_ref(v, r, ni) || !in_ref(v, r + 1u, nf) || !opt_i32_ref(v, r + 2u, cout) ||
        !const_i32_ref(v, r + 3u, cout) || !shift_ref(v, r + 4u, cout, -31, 31) ||
        !out_ref(v, r + 5u, no)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "conv: tensor reference out of bounds");
    }
  }
  return 0;
}

static int check_fc(vctx *v) {
  const uint8_t *w = v->w;
  const int32_t batches = word(w, 6), depth = word(w, 7), outs = word(w, 8);
  const int32_t per_channel = word(w, 5);
  uint64_t nq;
  if (!offset_ok(word(w, 0)) || !offset_ok(word(w, 1)) || !offset_ok(word(w, 2)) ||
      !act_ok(word(w, 3), word(w, 4)) || !in_range(per_channel, 0, 1)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "fully_connected: parameters invalid");
  }
  if (!size_ok(batches) || !size_ok(depth) || !size_ok(outs)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "fully_connected: dimensions invalid");
  }
  nq = per_channel ? (uint64_t)outs : 1u;
  if (!in_ref(v, 9, (uint64_t)batches * (uint64_t)depth) ||
      !in_ref(v, 10, (uint64_t)outs * (uint64_t)depth) || !opt_i32_ref(v, 11, (uint64_t)outs) ||
      !const_i32_ref(v, 12, nq) || !shift_ref(v, 13, nq, -31, 31) ||
      !out_ref(v, 14, (uint64_t)batches * (uint64_t)outs)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "fully_connected: tensor reference out of bounds");
  }
  return 0;
}

static int check_pool(vctx *v) {
  const uint8_t *w = v->w;
  uint64_t ni, no;
  int32_t k;
  for (k = 0; k < 4; k++) {
    if (!in_range(word(w, (uint32_t)k), 1, 255)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "pool: stride or window out of range");
    }
  }
  if (!in_range(word(w, 4), 0, 255) || !in_range(word(w, 5), 0, 255) ||
      !act_ok(word(w, 6), word(w, 7))) {
    return fail(v, EK_PKG_E_OP_PARAMS, "pool: padding or activation invalid");
  }
  if (!dims_ok(v, 8, &ni) || !dims_ok(v, 12, &no) || word(w, 8) != word(w, 12) ||
      word(w, 11) != word(w, 15)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "pool: dimensions invalid");
  }
  if (!windows_ok(word(w, 9), word(w, 13), word(w, 2), word(w, 0), 1, word(w, 4)) ||
      !windows_ok(word(w, 10), word(w, 14), word(w, 3), word(w, 1), 1, word(w, 5))) {
    return fail(v, EK_PKG_E_OP_PARAMS, "pool: a window lies wholly in the padding");
  }
  if (!in_ref(v, 16, ni) || !out_ref(v, 17, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "pool: tensor reference out of bounds");
  }
  return 0;
}

/* ek_mul_params words (MUL, DIV). */
static int mul_params_ok(const uint8_t *w) {
  return offset_ok(word(w, 0)) && offset_ok(word(w, 1)) && in_range(word(w, 3), -31, 31) &&
         offset_ok(word(w, 4)) && act_ok(word(w, 5), word(w, 6));
}

/* The broadcast binary layout after its params: output dims at word d, the two operands'
 * strides (d + 4, d + 8), their element counts (d + 12, d + 13), their refs (d + 14,
 * d + 15) and the output ref (d + 16); the messages name the binary or the elementwise ops. */
static int broadcast_ok(vctx *v, uint32_t d, int elementwise) {
  const uint8_t *w = v->w;
  uint64_t no;
  if (!dims_ok(v, d, &no) || !strides_ok(v, d, d + 4u, word(w, d + 12u)) ||
      !strides_ok(v, d, d + 8u, word(w, d + 13u))) {
    return fail(v, EK_PKG_E_OP_PARAMS, elementwise ? "elementwise op: dimensions or strides invalid"
                                                   : "binary op: dimensions or strides invalid");
  }
  if (!in_ref(v, d + 14u, (uint64_t)word(w, d + 12u)) ||
      !in_ref(v, d + 15u, (uint64_t)word(w, d + 13u)) || !out_ref(v, d + 16u, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, elementwise ? "elementwise op: tensor reference out of bounds"
                                                   : "binary op: tensor reference out of bounds");
  }
  return 0;
}

/* ADD/SUB (mul = 0) and MUL (mul = 1). */
static int check_binary(vctx *v, int mul) {
  const uint8_t *w = v->w;
  int ok;
  if (mul) {
    ok = mul_params_ok(w);
  } else {
    ok = offset_ok(word(w, 0)) && offset_ok(word(w, 1)) && in_range(word(w, 2), 0, 30) &&
         in_range(word(w, 4), -31, 0) && in_range(word(w, 6), -31, 0) &&
         in_range(word(w, 8), -31, 0) && offset_ok(word(w, 9)) && act_ok(word(w, 10), word(w, 11));
  }
  if (!ok) {
    return fail(v, EK_PKG_E_OP_PARAMS, "binary op: parameters invalid");
  }
  return broadcast_ok(v, mul ? 7u : 12u, 0);
}

static int check_pad(vctx *v) {
  const uint8_t *w = v->w;
  uint64_t ni, no = 1;
  uint32_t k;
  if (!dims_ok(v, 9, &ni) || !in_range(word(w, 8), -128, 127)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "pad: dimensions or value invalid");
  }
  for (k = 0; k < 4u; k++) {
    const int32_t before = word(w, k), after = word(w, 4u + k);
    int64_t od;
    if (!in_range(before, 0, MAX_DIM) || !in_range(after, 0, MAX_DIM)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "pad: paddings out of range");
    }
    od = (int64_t)before + word(w, 9u + k) + after;
    if (od > MAX_DIM) {
      return fail(v, EK_PKG_E_OP_PARAMS, "pad: output too large");
    }
    no *= (uint64_t)od;
  }
  if (no > MAX_ELEMS || !in_ref(v, 13, ni) || !out_ref(v, 14, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "pad: tensor reference out of bounds");
  }
  return 0;
}

static int check_concat(vctx *v, uint32_t words) {
  const uint8_t *w = v->w;
  const int32_t n = word(w, 0), outer = word(w, 1), inner = word(w, 2);
  uint64_t total = 0;
  int32_t i;
  if (!in_range(n, 1, EK_PKG_MAX_CONCAT) || words != 4u + 2u * (uint32_t)n || !size_ok(outer) ||
      !size_ok(inner)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "concatenation: parameters invalid");
  }
  for (i = 0; i < n; i++) {
    const int32_t axis = word(w, 4u + 2u * (uint32_t)i);
    const uint64_t bytes = (uint64_t)outer * (uint64_t)inner * (uint64_t)(axis > 0 ? axis : 0);
    if (!size_ok(axis) || bytes > MAX_ELEMS || !in_ref(v, 5u + 2u * (uint32_t)i, bytes)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "concatenation: input invalid");
    }
    total += (uint64_t)axis;
  }
  total *= (uint64_t)outer * (uint64_t)inner;
  if (total > MAX_ELEMS || !out_ref(v, 3, total)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "concatenation: output out of bounds");
  }
  return 0;
}

static int check_transpose(vctx *v) {
  const uint8_t *w = v->w;
  uint64_t ni;
  uint32_t seen = 0, k;
  if (!dims_ok(v, 0, &ni)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "transpose: dimensions invalid");
  }
  for (k = 0; k < 4u; k++) {
    const int32_t p = word(w, 4u + k);
    if (!in_range(p, 0, 3) || (seen & (1u << p))) {
      return fail(v, EK_PKG_E_OP_PARAMS, "transpose: perm is not a permutation");
    }
    seen |= 1u << p;
  }
  if (!in_ref(v, 8, ni) || !out_ref(v, 9, ni)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "transpose: tensor reference out of bounds");
  }
  return 0;
}

static int check_mean(vctx *v) {
  const uint8_t *w = v->w;
  const int32_t mask = word(w, 8);
  uint64_t ni, no = 1;
  uint32_t k;
  if (!offset_ok(word(w, 0)) || !offset_ok(word(w, 1)) || !in_range(word(w, 3), -31, 31) ||
      !in_range(mask, 0, 15) || !dims_ok(v, 4, &ni)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "mean: parameters invalid");
  }
  for (k = 0; k < 4u; k++) {
    if (!(mask & (1 << k))) {
      no *= (uint64_t)word(w, 4u + k);
    }
  }
  if (!in_ref(v, 9, ni) || !out_ref(v, 10, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "mean: tensor reference out of bounds");
  }
  return 0;
}

/* Ops of the shape (params..., size, input, output) with element sizes in / out. */
static int check_flat(vctx *v, uint32_t size_word, uint32_t in_size, uint32_t out_size) {
  const int32_t n = word(v->w, size_word);
  if (!size_ok(n) || (uint64_t)n * in_size > MAX_ELEMS || (uint64_t)n * out_size > MAX_ELEMS) {
    return fail(v, EK_PKG_E_OP_PARAMS, "size invalid");
  }
  if (!in_ref(v, size_word + 1u, (uint64_t)n * in_size) ||
      !out_ref(v, size_word + 2u, (uint64_t)n * out_size)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "tensor reference out of bounds");
  }
  if (in_size == 4u && (ek_rd32(v->w + 4u * (size_word + 1u)) & 3u)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "float input misaligned");
  }
  if (out_size == 4u && (ek_rd32(v->w + 4u * (size_word + 2u)) & 3u)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "float output misaligned");
  }
  return 0;
}

/* SLICE: begin[4], stride[4], size[4], input dims (4), input ref, output ref. Every
 * selected index, first and last, lies inside its dimension. */
static int check_slice(vctx *v) {
  const uint8_t *w = v->w;
  uint64_t ni, no = 1;
  uint32_t k;
  if (!dims_ok(v, 12, &ni)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "slice: dimensions invalid");
  }
  for (k = 0; k < 4u; k++) {
    const int32_t b = word(w, k), st = word(w, 4u + k), n = word(w, 8u + k), d = word(w, 12u + k);
    int64_t last;
    if (!in_range(n, 1, MAX_DIM) || !in_range(st, -MAX_DIM, MAX_DIM) || st == 0 || !in_range(b, 0, d - 1)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "slice: begin, stride or size out of range");
    }
    last = (int64_t)b + (int64_t)(n - 1) * st;
    if (last < 0 || last >= d) {
      return fail(v, EK_PKG_E_OP_PARAMS, "slice: selects outside the input");
    }
    no *= (uint64_t)n;
  }
  if (no > MAX_ELEMS || !in_ref(v, 16, ni) || !out_ref(v, 17, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "slice: tensor reference out of bounds");
  }
  return 0;
}

/* SPLIT: n (1..EK_PKG_MAX_SPLIT), outer, inner, input ref, then per output: axis size, ref. */
static int check_split(vctx *v, uint32_t words) {
  const uint8_t *w = v->w;
  const int32_t n = word(w, 0), outer = word(w, 1), inner = word(w, 2);
  uint64_t total = 0, rows;
  int32_t i;
  if (!in_range(n, 1, EK_PKG_MAX_SPLIT) || words != 4u + 2u * (uint32_t)n || !size_ok(outer) ||
      !size_ok(inner)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "split: parameters invalid");
  }
  rows = (uint64_t)outer * (uint64_t)inner; /* < 2^62: each factor < 2^31 */
  if (rows > MAX_ELEMS) {
    return fail(v, EK_PKG_E_OP_PARAMS, "split: parameters invalid");
  }
  for (i = 0; i < n; i++) {
    const int32_t axis = word(w, 4u + 2u * (uint32_t)i);
    const uint64_t bytes = rows * (uint64_t)(axis > 0 ? axis : 0);
    if (!size_ok(axis) || bytes > MAX_ELEMS || !out_ref(v, 5u + 2u * (uint32_t)i, bytes)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "split: output invalid");
    }
    total += (uint64_t)axis;
  }
  total *= rows; /* total < 2^36, rows < 2^31 */
  if (total > MAX_ELEMS || !in_ref(v, 3, total)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "split: input out of bounds");
  }
  return 0;
}

/* GATHER: batch, outer, axis size, inner, indices per batch, indices ref (int32 constants,
 * each in [0, axis size)), input ref, output ref. */
static int check_gather(vctx *v) {
  const uint8_t *w = v->w;
  const int32_t batch = word(w, 0), outer = word(w, 1), axis = word(w, 2), inner = word(w, 3);
  const int32_t num = word(w, 4);
  uint64_t rows, count;
  /* Products taken two factors at a time, each checked: every factor is below 2^31. */
  if (!size_ok(batch) || !size_ok(outer) || !size_ok(axis) || !size_ok(inner) || !size_ok(num)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "gather: sizes invalid");
  }
  rows = (uint64_t)batch * (uint64_t)outer;
  if (rows > MAX_ELEMS || rows * (uint64_t)inner > MAX_ELEMS ||
      rows * (uint64_t)inner * (uint64_t)axis > MAX_ELEMS ||
      rows * (uint64_t)inner * (uint64_t)num > MAX_ELEMS ||
      (uint64_t)batch * (uint64_t)num > MAX_ELEMS) {
    return fail(v, EK_PKG_E_OP_PARAMS, "gather: sizes invalid");
  }
  count = (uint64_t)batch * (uint64_t)num;
  if (!shift_ref(v, 5, count, 0, axis - 1)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "gather: indices out of range");
  }
  if (!in_ref(v, 6, rows * (uint64_t)axis * (uint64_t)inner) ||
      !out_ref(v, 7, rows * (uint64_t)num * (uint64_t)inner)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "gather: tensor reference out of bounds");
  }
  return 0;
}

/* DEPTH_TO_SPACE / SPACE_TO_DEPTH: input dims (4), block size, input ref, output ref. */
static int check_depth_space(vctx *v, int to_space) {
  const uint8_t *w = v->w;
  const int32_t h = word(w, 1), wd = word(w, 2), c = word(w, 3), b = word(w, 4);
  uint64_t ni;
  if (!dims_ok(v, 0, &ni) || !in_range(b, 1, 255)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "depth/space: dimensions or block size invalid");
  }
  if (to_space ? (c % (b * b) != 0 || (int64_t)h * b > MAX_DIM || (int64_t)wd * b > MAX_DIM)
               : (h % b != 0 || wd % b != 0 || (int64_t)c * b * b > MAX_DIM)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "depth/space: block size does not fit the dimensions");
  }
  if (!in_ref(v, 5, ni) || !out_ref(v, 6, ni)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "depth/space: tensor reference out of bounds");
  }
  return 0;
}

/* RESIZE_NEAREST_NEIGHBOR: input dims, output dims, row table ref, column table ref (int32
 * constants, each an input row / column), input ref, output ref. */
static int check_resize_nearest(vctx *v) {
  const uint8_t *w = v->w;
  uint64_t ni, no;
  if (!dims_ok(v, 0, &ni) || !dims_ok(v, 4, &no) || word(w, 4) != word(w, 0) || word(w, 7) != word(w, 3)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "resize: dimensions invalid");
  }
  if (!shift_ref(v, 8, (uint64_t)word(w, 5), 0, word(w, 1) - 1) ||
      !shift_ref(v, 9, (uint64_t)word(w, 6), 0, word(w, 2) - 1)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "resize: index tables out of range");
  }
  if (!in_ref(v, 10, ni) || !out_ref(v, 11, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "resize: tensor reference out of bounds");
  }
  return 0;
}

/* RESIZE_BILINEAR: scale_10_h, scale_10_w, half_pixel_centers, input dims, output dims, input
 * ref, output ref. The kernel clamps its taps to the input, so only the positions' int32
 * range needs bounding: (out - 1) * scale_10 <= 1024 * in + out holds for every scale
 * edgekit derives. */
static int check_resize_bilinear(vctx *v) {
  const uint8_t *w = v->w;
  uint64_t ni, no;
  uint32_t k;
  if (!dims_ok(v, 3, &ni) || !dims_ok(v, 7, &no) || word(w, 7) != word(w, 3) || word(w, 10) != word(w, 6) ||
      !in_range(word(w, 2), 0, 1)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "resize: dimensions invalid");
  }
  for (k = 0; k < 2u; k++) {
    const int64_t scale = word(w, k), in = word(w, 4u + k), out = word(w, 8u + k);
    if (scale < 1 || (out - 1) * scale > 1024 * in + out) {
      return fail(v, EK_PKG_E_OP_PARAMS, "resize: scale out of range");
    }
  }
  if (!in_ref(v, 11, ni) || !out_ref(v, 12, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "resize: tensor reference out of bounds");
  }
  return 0;
}

/* TRANSPOSE_CONV: as CONV_2D (filter [Cout, KH, KW, Cin]; the kernel only reads input
 * pixels inside the input, whatever the pads). */
static int check_transpose_conv(vctx *v) {
  const uint8_t *w = v->w;
  uint64_t ni, nf, no;
  if (!in_range(word(w, 0), 1, 255) || !in_range(word(w, 1), 1, 255) || !in_range(word(w, 4), 0, MAX_DIM) ||
      !in_range(word(w, 5), 0, MAX_DIM)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "transpose_conv: stride or padding out of range");
  }
  if (!offset_ok(word(w, 6)) || !offset_ok(word(w, 7)) || !act_ok(word(w, 8), word(w, 9))) {
    return fail(v, EK_PKG_E_OP_PARAMS, "transpose_conv: offsets or activation range invalid");
  }
  if (!dims_ok(v, 10, &ni) || !dims_ok(v, 14, &nf) || !dims_ok(v, 18, &no) || word(w, 18) != word(w, 10) ||
      word(w, 14) != word(w, 21) || word(w, 17) != word(w, 13)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "transpose_conv: dimensions invalid");
  }
  if (!in_ref(v, 22, ni) || !in_ref(v, 23, nf) || !opt_i32_ref(v, 24, (uint64_t)word(w, 21)) ||
      !const_i32_ref(v, 25, (uint64_t)word(w, 21)) || !shift_ref(v, 26, (uint64_t)word(w, 21), -31, 31) ||
      !out_ref(v, 27, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "transpose_conv: tensor reference out of bounds");
  }
  return 0;
}

/* The elementwise kinds: LUT (table ref, size, input ref, output ref) and the broadcast
 * binaries, laid out as ADD / MUL: params words (none for MAXIMUM / MINIMUM, 7 for PRELU
 * and DIV as ek_prelu_params / ek_mul_params, 12 for SQUARED_DIFFERENCE as ek_add_params),
 * output dims (4), the two operands' strides (4 + 4), their element counts, their refs
 * and the output ref. */
static int check_elementwise(vctx *v, uint32_t kind) {
  const uint8_t *w = v->w;
  uint32_t d = 0; /* first output dims word */
  int ok = 1;
  if (kind == EK_OP_LUT) {
    if (!ref_ok(v, (uint32_t)word(w, 0), 256u, 1, 0) || !((uint32_t)word(w, 0) & EK_REF_CONST)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "lut: the table must be 256 constant bytes");
    }
    return check_flat(v, 1, 1, 1);
  }
  if (kind == EK_OP_PRELU) {
    d = 7u;
    ok = offset_ok(word(w, 0)) && offset_ok(word(w, 1)) && offset_ok(word(w, 2)) &&
         in_range(word(w, 4), -31, 31) && in_range(word(w, 6), -31, 31);
  } else if (kind == EK_OP_DIV) {
    d = 7u;
    ok = mul_params_ok(w);
  } else if (kind == EK_OP_SQUARED_DIFFERENCE) {
    d = 12u;
    ok = offset_ok(word(w, 0)) && offset_ok(word(w, 1)) && in_range(word(w, 2), 0, 15) &&
         in_range(word(w, 4), -31, 0) && in_range(word(w, 6), -31, 0) &&
         in_range(word(w, 8), -31, 31) && offset_ok(word(w, 9)) && act_ok(word(w, 10), word(w, 11));
  }
  if (!ok) {
    return fail(v, EK_PKG_E_OP_PARAMS, "elementwise op: parameters invalid");
  }
  return broadcast_ok(v, d, 1);
}

/* UNIDIRECTIONAL_SEQUENCE_LSTM: ek_lstm_params (34 words), then input, input weights,
 * recurrent weights, bias and output references. */
static int check_lstm(vctx *v) {
  const uint8_t *w = v->w;
  const int32_t b = word(w, 0), t = word(w, 1), ni = word(w, 2), nh = word(w, 3);
  uint64_t seq_in, seq_out;
  int32_t k;
  if (!in_range(b, 1, MAX_DIM) || !in_range(t, 1, MAX_DIM) || !in_range(ni, 1, MAX_DIM) ||
      !in_range(nh, 1, 1024) || !in_range(word(w, 4), 0, 1)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "lstm: dimensions invalid");
  }
  if (!offset_ok(word(w, 5)) || !offset_ok(word(w, 6)) || !in_range(word(w, 7), -128, 127)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "lstm: offsets invalid");
  }
  for (k = 0; k < 4; k++) {
    if (!in_range(word(w, 12u + (uint32_t)k), -31, 31) || !in_range(word(w, 20u + (uint32_t)k), -31, 31)) {
      return fail(v, EK_PKG_E_OP_PARAMS, "lstm: gate shifts out of range");
    }
  }
  if (!in_range(word(w, 25), -31, 31) || !in_range(word(w, 27), -31, 31) || !in_range(word(w, 29), -31, 31) ||
      !in_range(word(w, 30), 0, 3) || !in_range(word(w, 31), 0, 30) || !in_range(word(w, 32), 0, 1) ||
      !in_range(word(w, 33), 0, 32767)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "lstm: cell parameters out of range");
  }
  seq_in = (uint64_t)b * (uint64_t)t * (uint64_t)ni;
  seq_out = (uint64_t)b * (uint64_t)t * (uint64_t)nh;
  if (seq_in > MAX_ELEMS || seq_out > MAX_ELEMS || !in_ref(v, 34, seq_in) ||
      !in_ref(v, 35, 4u * (uint64_t)nh * (uint64_t)ni) || !in_ref(v, 36, 4u * (uint64_t)nh * (uint64_t)nh) ||
      !const_i32_ref(v, 37, 4u * (uint64_t)nh) || !out_ref(v, 38, seq_out)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "lstm: tensor reference out of bounds");
  }
  return 0;
}

/* SVDF: ek_svdf_params (10 words), then input, feature weights, newest time weights
 * (int32), bias and output references. */
static int check_svdf(vctx *v) {
  const uint8_t *w = v->w;
  const int32_t b = word(w, 0), ni = word(w, 1), nf = word(w, 2), rank = word(w, 3);
  if (!in_range(b, 1, MAX_DIM) || !in_range(ni, 1, MAX_DIM) || !in_range(nf, 1, MAX_DIM) ||
      !in_range(rank, 1, nf) || nf % rank != 0) {
    return fail(v, EK_PKG_E_OP_PARAMS, "svdf: dimensions invalid");
  }
  if (!offset_ok(word(w, 4)) || !in_range(word(w, 6), -31, 31) || !in_range(word(w, 8), -31, 31) ||
      !in_range(word(w, 9), -128, 127)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "svdf: parameters invalid");
  }
  if (!in_ref(v, 10, (uint64_t)b * (uint64_t)ni) || !in_ref(v, 11, (uint64_t)nf * (uint64_t)ni) ||
      !const_i32_ref(v, 12, (uint64_t)nf) || !const_i32_ref(v, 13, (uint64_t)(nf / rank)) ||
      !out_ref(v, 14, (uint64_t)b * (uint64_t)(nf / rank))) {
    return fail(v, EK_PKG_E_OP_PARAMS, "svdf: tensor reference out of bounds");
  }
  return 0;
}

/* REDUCE_MAX: input dims (4), axis mask, input ref, output ref. */
static int check_reduce_max(vctx *v) {
  const int32_t mask = word(v->w, 4);
  uint64_t ni, no = 1;
  uint32_t k;
  if (!in_range(mask, 0, 15) || !dims_ok(v, 0, &ni)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "reduce_max: parameters invalid");
  }
  for (k = 0; k < 4u; k++) {
    if (!(mask & (1 << k))) {
      no *= (uint64_t)word(v->w, k);
    }
  }
  if (!in_ref(v, 5, ni) || !out_ref(v, 6, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "reduce_max: tensor reference out of bounds");
  }
  return 0;
}

/* ARG_MAX / ARG_MIN: outer size, axis size, inner size, is_min, input ref, output ref
 * (int32 indices, 4-byte aligned). */
static int check_arg_min_max(vctx *v) {
  const int32_t outer = word(v->w, 0), axis = word(v->w, 1), inner = word(v->w, 2);
  uint64_t ni;
  if (!size_ok(outer) || !size_ok(axis) || !size_ok(inner) || !in_range(word(v->w, 3), 0, 1)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "arg_min_max: parameters invalid");
  }
  ni = (uint64_t)outer * (uint64_t)axis * (uint64_t)inner;
  if (ni > MAX_ELEMS || !in_ref(v, 4, ni) ||
      !ref_ok(v, (uint32_t)word(v->w, 5), 4u * (uint64_t)outer * (uint64_t)inner, 4, 1)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "arg_min_max: tensor reference out of bounds");
  }
  return 0;
}

/* L2_NORMALIZATION: input offset, outer size, depth, input ref, output ref. */
static int check_l2_normalization(vctx *v) {
  const int32_t outer = word(v->w, 1), depth = word(v->w, 2);
  uint64_t n;
  if (!offset_ok(word(v->w, 0)) || !size_ok(outer) || !in_range(depth, 1, 32768)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "l2_normalization: parameters invalid");
  }
  n = (uint64_t)outer * (uint64_t)depth;
  if (n > MAX_ELEMS || !in_ref(v, 3, n) || !out_ref(v, 4, n)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "l2_normalization: tensor reference out of bounds");
  }
  return 0;
}

/* A batch dimension of an operand: its own size or 1 (broadcast). */
static int batch_ok(int32_t operand, int32_t out) {
  return operand == out || operand == 1;
}

/* BATCH_MATMUL: ek_batch_matmul_params (7), lhs dims (4), rhs dims (4), output dims (4),
 * lhs ref, rhs ref, output ref. The matrix shapes must agree. */
static int check_batch_matmul(vctx *v) {
  const uint8_t *w = v->w;
  const int32_t adj_x = word(w, 5), adj_y = word(w, 6);
  uint64_t na, nb, no;
  int32_t rows, depth, depth_b, cols;
  if (!offset_ok(word(w, 0)) || !offset_ok(word(w, 1)) || !in_range(word(w, 2), -128, 127) ||
      !in_range(word(w, 4), -31, 31) || !in_range(adj_x, 0, 1) || !in_range(adj_y, 0, 1) ||
      !dims_ok(v, 7, &na) || !dims_ok(v, 11, &nb) || !dims_ok(v, 15, &no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "batch_matmul: parameters invalid");
  }
  rows = adj_x ? word(w, 10) : word(w, 9);
  depth = adj_x ? word(w, 9) : word(w, 10);
  depth_b = adj_y ? word(w, 14) : word(w, 13);
  cols = adj_y ? word(w, 13) : word(w, 14);
  if (depth != depth_b || rows != word(w, 17) || cols != word(w, 18) ||
      !batch_ok(word(w, 7), word(w, 15)) || !batch_ok(word(w, 8), word(w, 16)) ||
      !batch_ok(word(w, 11), word(w, 15)) || !batch_ok(word(w, 12), word(w, 16))) {
    return fail(v, EK_PKG_E_OP_PARAMS, "batch_matmul: shapes do not agree");
  }
  if (!in_ref(v, 19, na) || !in_ref(v, 20, nb) || !out_ref(v, 21, no)) {
    return fail(v, EK_PKG_E_OP_PARAMS, "batch_matmul: tensor reference out of bounds");
  }
  return 0;
}

static int check_op(vctx *v, uint32_t kind, uint32_t words) {
  const uint8_t *w = v->w;
  switch (kind) {
    case EK_OP_CONV_2D:
      return check_conv(v, 0);
    case EK_OP_DEPTHWISE_CONV_2D:
      return check_conv(v, 1);
    case EK_OP_FULLY_CONNECTED:
      return check_fc(v);
    case EK_OP_AVERAGE_POOL_2D:
    case EK_OP_MAX_POOL_2D:
      return check_pool(v);
    case EK_OP_ADD:
    case EK_OP_SUB:
      return check_binary(v, 0);
    case EK_OP_MUL:
      return check_binary(v, 1);
    case EK_OP_PAD:
      return check_pad(v);
    case EK_OP_CONCATENATION:
      return check_concat(v, words);
    case EK_OP_TRANSPOSE:
      return check_transpose(v);
    case EK_OP_MEAN:
      return check_mean(v);
    case EK_OP_SOFTMAX: {
      const int32_t outer = word(w, 3), depth = word(w, 4);
      if (!in_range(word(w, 1), 0, 31) || word(w, 2) > 0 || !size_ok(outer) || !size_ok(depth) ||
          (uint64_t)outer * (uint64_t)depth > MAX_ELEMS) {
        return fail(v, EK_PKG_E_OP_PARAMS, "softmax: parameters invalid");
      }
      if (!in_ref(v, 5, (uint64_t)outer * (uint64_t)depth) ||
          !out_ref(v, 6, (uint64_t)outer * (uint64_t)depth)) {
        return fail(v, EK_PKG_E_OP_PARAMS, "softmax: tensor reference out of bounds");
      }
      return 0;
    }
    case EK_OP_LOGISTIC:
    case EK_OP_TANH:
      if (!offset_ok(word(w, 0)) || !in_range(word(w, 2), -31, 31) ||
          !in_range(word(w, 3), 0, 1 << 30)) {
        return fail(v, EK_PKG_E_OP_PARAMS, "logistic/tanh: parameters invalid");
      }
      return check_flat(v, 4, 1, 1);
    case EK_OP_RELU:
    case EK_OP_REQUANTIZE:
      if (!offset_ok(word(w, 0)) || !offset_ok(word(w, 1)) || !in_range(word(w, 3), -31, 31) ||
          !act_ok(word(w, 4), word(w, 5))) {
        return fail(v, EK_PKG_E_OP_PARAMS, "requantize: parameters invalid");
      }
      return check_flat(v, 6, 1, 1);
    case EK_OP_RELU6:
      if (!act_ok(word(w, 0), word(w, 1))) {
        return fail(v, EK_PKG_E_OP_PARAMS, "relu6: range invalid");
      }
      return check_flat(v, 2, 1, 1);
    case EK_OP_QUANTIZE:
    case EK_OP_DEQUANTIZE: {
      float scale;
      const uint32_t bits = ek_rd32(w);
      memcpy(&scale, &bits, sizeof scale);
      if (!(scale > 0.0f) || scale > 3.0e38f || !in_range(word(w, 1), -128, 127)) {
        return fail(v, EK_PKG_E_OP_PARAMS, "quantize: scale or zero point invalid");
      }
      return kind == EK_OP_QUANTIZE ? check_flat(v, 2, 4, 1) : check_flat(v, 2, 1, 4);
    }
    case EK_OP_COPY:
      return check_flat(v, 0, 1, 1);
    case EK_OP_SLICE:
      return check_slice(v);
    case EK_OP_SPLIT:
      return check_split(v, words);
    case EK_OP_GATHER:
      return check_gather(v);
    case EK_OP_DEPTH_TO_SPACE:
      return check_depth_space(v, 1);
    case EK_OP_SPACE_TO_DEPTH:
      return check_depth_space(v, 0);
    case EK_OP_CAST_S8_F32:
      return check_flat(v, 0, 1, 4);
    case EK_OP_CAST_F32_S8:
      return check_flat(v, 0, 4, 1);
    case EK_OP_RESIZE_NEAREST:
      return check_resize_nearest(v);
    case EK_OP_RESIZE_BILINEAR:
      return check_resize_bilinear(v);
    case EK_OP_TRANSPOSE_CONV:
      return check_transpose_conv(v);
    case EK_OP_LSTM:
      return check_lstm(v);
    case EK_OP_SVDF:
      return check_svdf(v);
    case EK_OP_REDUCE_MAX:
      return check_reduce_max(v);
    case EK_OP_ARG_MIN_MAX:
      return check_arg_min_max(v);
    case EK_OP_L2_NORMALIZATION:
      return check_l2_normalization(v);
    case EK_OP_BATCH_MATMUL:
      return check_batch_matmul(v);
    case EK_OP_LUT:
    case EK_OP_MAXIMUM:
    case EK_OP_MINIMUM:
    case EK_OP_PRELU:
    case EK_OP_SQUARED_DIFFERENCE:
    case EK_OP_DIV:
      return check_elementwise(v, kind);
    default:
      return fail(v, EK_PKG_E_OP_KIND, "unknown op kind");
  }
}

static int header_fail(ek_pkg_error *err, uint32_t reason, const char *message) {
  err->reason = reason;
  err->op = 0xFFFFFFFFu;
  err->message = message;
  return -1;
}

int ek_pkg_open(const uint8_t *p, uint32_t size, const ek_pkg_limits *lim, ek_pkg *pkg,
                ek_pkg_error *err) {
  uint32_t header_size, total, arena, nin, nout, io_table, num_ops, op_table, data, data_size;
  uint32_t i, in_bytes = 0, out_bytes = 0;
  char target[17];
  vctx v;

  if (size < EK_PKG_PREFIX_BYTES) {
    return header_fail(err, EK_PKG_E_SIZE, "package shorter than its header");
  }
  if (ek_rd32(p + EK_PKG_OFF_MAGIC) != EK_PKG_MAGIC) {
    return header_fail(err, EK_PKG_E_MAGIC, "bad magic (not an edgekit model package)");
  }
  if (ek_rd16(p + EK_PKG_OFF_FORMAT_MAJOR) != EK_PACKAGE_FORMAT_MAJOR) {
    /* Both versions go back in the detail so the host can name them. */
    const uint32_t major = ek_rd16(p + EK_PKG_OFF_FORMAT_MAJOR);
    header_fail(err, EK_PKG_E_FORMAT, "package format major version this firmware does not run");
    err->op = (major > 0xFFu ? 0xFFu : major) | ((uint32_t)EK_PACKAGE_FORMAT_MAJOR << 8);
    return -1;
  }
  if (size < EK_PKG_HEADER_BYTES) {
    return header_fail(err, EK_PKG_E_SIZE, "package shorter than its header");
  }
  {
    uint8_t hdr[EK_PKG_HEADER_BYTES];
    memcpy(hdr, p, EK_PKG_HEADER_BYTES);
    memset(hdr + EK_PKG_OFF_HEADER_CRC, 0, 4u);
    if (ek_crc32(hdr, EK_PKG_HEADER_BYTES) != ek_rd32(p + EK_PKG_OFF_HEADER_CRC)) {
      return header_fail(err, EK_PKG_E_HEADER_CRC, "header CRC mismatch");
    }
  }
  header_size = ek_rd32(p + EK_PKG_OFF_HEADER_SIZE);
  total = ek_rd32(p + EK_PKG_OFF_TOTAL_SIZE);
  if (total != size || header_size < EK_PKG_HEADER_BYTES || header_size > size) {
    return header_fail(err, EK_PKG_E_SIZE, "total or header size does not match");
  }
  memcpy(target, p + EK_PKG_OFF_TARGET, 16);
  target[16] = '\0';
  if (strncmp(target, lim->target, 16) != 0) {
    return header_fail(err, EK_PKG_E_TARGET, "package built for another target");
  }
  arena = ek_rd32(p + EK_PKG_OFF_ARENA_SIZE);
  if (arena > lim->arena_bytes) {
    return header_fail(err, EK_PKG_E_ARENA, "model needs a larger arena than this firmware has");
  }
  nin = p[EK_PKG_OFF_NUM_INPUTS];
  nout = p[EK_PKG_OFF_NUM_OUTPUTS];
  io_table = ek_rd32(p + EK_PKG_OFF_IO_TABLE);
  num_ops = ek_rd32(p + EK_PKG_OFF_NUM_OPS);
  op_table = ek_rd32(p + EK_PKG_OFF_OP_TABLE);
  data = ek_rd32(p + EK_PKG_OFF_DATA);
  data_size = ek_rd32(p + EK_PKG_OFF_DATA_SIZE);
  if (nin < 1u || nout < 1u || nin + nout > EK_PKG_MAX_IO || io_table < header_size ||
      (uint64_t)io_table + (uint64_t)(nin + nout) * EK_PKG_IO_ENTRY_BYTES > size ||
      (io_table & 3u)) {
    return header_fail(err, EK_PKG_E_IO, "input/output table invalid");
  }
  if (num_ops > EK_PKG_MAX_OPS || op_table < header_size || (op_table & 3u) ||
      (uint64_t)op_table + (uint64_t)num_ops * EK_PKG_OP_ENTRY_BYTES > size || data < header_size ||
      (uint64_t)data + data_size > size) {
    return header_fail(err, EK_PKG_E_TABLE, "op table or data region out of bounds");
  }
  for (i = 0; i < nin + nout; i++) {
    const uint8_t *e = p + io_table + i * EK_PKG_IO_ENTRY_BYTES;
    const uint32_t off = ek_rd32(e), bytes = ek_rd32(e + 4);
    const uint32_t dtype = e[16];
    if (bytes == 0u || (uint64_t)off + bytes > arena ||
        (dtype != EK_DTYPE_INT8 && dtype != EK_DTYPE_FLOAT32 && dtype != EK_DTYPE_INT32)) {
      return header_fail(err, EK_PKG_E_IO, "input/output tensor out of the arena");
    }
    if (i < nin) {
      in_bytes += bytes;
    } else {
      out_bytes += bytes;
    }
    if (in_bytes > lim->max_io_bytes || out_bytes > lim->max_io_bytes) {
      return header_fail(err, EK_PKG_E_IO, "inputs and outputs exceed the tensor buffer");
    }
  }
  if (((in_bytes + 15u) & ~15u) + out_bytes > lim->max_io_bytes) {
    return header_fail(err, EK_PKG_E_IO, "inputs and outputs exceed the tensor buffer");
  }
  v.pkg = p;
  v.data_start = data;
  v.data_end = data + data_size;
  v.arena = arena;
  v.err = err;
  for (i = 0; i < num_ops; i++) {
    const uint8_t *e = p + op_table + i * EK_PKG_OP_ENTRY_BYTES;
    const uint32_t kind = ek_rd16(e);
    const uint32_t params = ek_rd32(e + 4), bytes = ek_rd32(e + 8);
    v.op = i;
    if (kind == 0u || kind >= EK_OP_KIND_COUNT) {
      err->reason = EK_PKG_E_OP_KIND;
      err->op = i;
      err->message = "unknown op kind";
      return -1;
    }
    if ((params & 3u) || (bytes & 3u) || params < data || (uint64_t)params + bytes > v.data_end ||
        bytes < 4u * kWords[kind] ||
        (kind != EK_OP_CONCATENATION && kind != EK_OP_SPLIT && bytes != 4u * kWords[kind])) {
      err->reason = EK_PKG_E_OP_PARAMS;
      err->op = i;
      err->message = "op parameter block out of bounds or of the wrong size";
      return -1;
    }
    v.w = p + params;
    if (check_op(&v, kind, bytes / 4u) != 0) {
      return -1;
    }
  }
  pkg->base = p;
  pkg->size = size;
  pkg->arena_size = arena;
  pkg->num_inputs = nin;
  pkg->num_outputs = nout;
  pkg->input_bytes = in_bytes;
  pkg->output_bytes = out_bytes;
  pkg->num_ops = num_ops;
  pkg->op_table = op_table;
  pkg->io_table = io_table;
  return 0;
}

/* ------------------------------------------------------------------ running */

typedef struct {
  const uint8_t *pkg;
  uint8_t *arena;
  const uint8_t *w;
} rctx;

static const void *cref(const rctx *r, uint32_t i) {
  const uint32_t ref = ek_rd32(r->w + 4u * i);
  if (ref == EK_REF_NONE) {
    return 0;
  }
  if (ref & EK_REF_CONST) {
    return r->pkg + (ref & ~EK_REF_CONST);
  }
  return r->arena + ref;
}

static void *mref(const rctx *r, uint32_t i) {
  return r->arena + ek_rd32(r->w + 4u * i);
}

static int32_t rw(const rctx *r, uint32_t i) {
  return (int32_t)ek_rd32(r->w + 4u * i);
}

static ek_dims4 rdims(const rctx *r, uint32_t i) {
  ek_dims4 d;
  d.n = rw(r, i);
  d.h = rw(r, i + 1u);
  d.w = rw(r, i + 2u);
  d.c = rw(r, i + 3u);
  return d;
}

static ek_strides4 rstrides(const rctx *r, uint32_t i) {
  ek_strides4 s;
  s.n = rw(r, i);
  s.h = rw(r, i + 1u);
  s.w = rw(r, i + 2u);
  s.c = rw(r, i + 3u);
  return s;
}

static float rfloat(const rctx *r, uint32_t i) {
  const uint32_t bits = ek_rd32(r->w + 4u * i);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static void run_conv(const rctx *r) {
  ek_conv_params p;
  ek_dims4 in, fd, out;
  p.stride_h = rw(r, 0);
  p.stride_w = rw(r, 1);
  p.dilation_h = rw(r, 2);
  p.dilation_w = rw(r, 3);
  p.pad_top = rw(r, 4);
  p.pad_left = rw(r, 5);
  p.input_offset = rw(r, 6);
  p.output_offset = rw(r, 7);
  p.act_min = rw(r, 8);
  p.act_max = rw(r, 9);
  in = rdims(r, 10);
  fd = rdims(r, 14);
  out = rdims(r, 18);
  ek_conv2d_s8(&p, (const int32_t *)cref(r, 25), (const int32_t *)cref(r, 26), &in,
               (const int8_t *)cref(r, 22), &fd, (const int8_t *)cref(r, 23),
               (const int32_t *)cref(r, 24), &out, (int8_t *)mref(r, 27));
}

static void run_transpose_conv(const rctx *r) {
  ek_conv_params p;
  ek_dims4 in, fd, out;
  p.stride_h = rw(r, 0);
  p.stride_w = rw(r, 1);
  p.dilation_h = rw(r, 2);
  p.dilation_w = rw(r, 3);
  p.pad_top = rw(r, 4);
  p.pad_left = rw(r, 5);
  p.input_offset = rw(r, 6);
  p.output_offset = rw(r, 7);
  p.act_min = rw(r, 8);
  p.act_max = rw(r, 9);
  in = rdims(r, 10);
  fd = rdims(r, 14);
  out = rdims(r, 18);
  ek_transpose_conv_s8(&p, (const int32_t *)cref(r, 25), (const int32_t *)cref(r, 26), &in,
                       (const int8_t *)cref(r, 22), &fd, (const int8_t *)cref(r, 23),
                       (const int32_t *)cref(r, 24), &out, (int8_t *)mref(r, 27));
}

static void run_depthwise(const rctx *r) {
  ek_depthwise_params p;
  ek_dims4 in, fd, out;
  p.stride_h = rw(r, 0);
  p.stride_w = rw(r, 1);
  p.dilation_h = rw(r, 2);
  p.dilation_w = rw(r, 3);
  p.pad_top = rw(r, 4);
  p.pad_left = rw(r, 5);
  p.depth_multiplier = rw(r, 6);
  p.input_offset = rw(r, 7);
  p.output_offset = rw(r, 8);
  p.act_min = rw(r, 9);
  p.act_max = rw(r, 10);
  in = rdims(r, 11);
  fd = rdims(r, 15);
  out = rdims(r, 19);
  ek_depthwise_conv2d_s8(&p, (const int32_t *)cref(r, 26), (const int32_t *)cref(r, 27), &in,
                         (const int8_t *)cref(r, 23), &fd, (const int8_t *)cref(r, 24),
                         (const int32_t *)cref(r, 25), &out, (int8_t *)mref(r, 28));
}

static void run_fc(const rctx *r) {
  ek_fc_params p;
  p.input_offset = rw(r, 0);
  p.filter_offset = rw(r, 1);
  p.output_offset = rw(r, 2);
  p.act_min = rw(r, 3);
  p.act_max = rw(r, 4);
  p.per_channel = rw(r, 5);
  ek_fully_connected_s8(&p, (const int32_t *)cref(r, 12), (const int32_t *)cref(r, 13),
                        rw(r, 6), rw(r, 7), rw(r, 8), (const int8_t *)cref(r, 9),
                        (const int8_t *)cref(r, 10), (const int32_t *)cref(r, 11),
                        (int8_t *)mref(r, 14));
}

static void run_pool(const rctx *r, int avg) {
  ek_pool_params p;
  ek_dims4 in, out;
  p.stride_h = rw(r, 0);
  p.stride_w = rw(r, 1);
  p.filter_h = rw(r, 2);
  p.filter_w = rw(r, 3);
  p.pad_top = rw(r, 4);
  p.pad_left = rw(r, 5);
  p.act_min = rw(r, 6);
  p.act_max = rw(r, 7);
  in = rdims(r, 8);
  out = rdims(r, 12);
  if (avg) {
    ek_avg_pool2d_s8(&p, &in, (const int8_t *)cref(r, 16), &out, (int8_t *)mref(r, 17));
  } else {
    ek_max_pool2d_s8(&p, &in, (const int8_t *)cref(r, 16), &out, (int8_t *)mref(r, 17));
  }
}

static void run_addsub(const rctx *r, int sub) {
  ek_add_params p;
  ek_dims4 out;
  ek_strides4 s1, s2;
  p.input1_offset = rw(r, 0);
  p.input2_offset = rw(r, 1);
  p.left_shift = rw(r, 2);
  p.input1_multiplier = rw(r, 3);
  p.input1_shift = rw(r, 4);
  p.input2_multiplier = rw(r, 5);
  p.input2_shift = rw(r, 6);
  p.output_multiplier = rw(r, 7);
  p.output_shift = rw(r, 8);
  p.output_offset = rw(r, 9);
  p.act_min = rw(r, 10);
  p.act_max = rw(r, 11);
  out = rdims(r, 12);
  s1 = rstrides(r, 16);
  s2 = rstrides(r, 20);
  if (sub) {
    ek_sub_s8(&p, &out, (const int8_t *)cref(r, 26), &s1, (const int8_t *)cref(r, 27), &s2,
              (int8_t *)mref(r, 28));
  } else {
    ek_add_s8(&p, &out, (const int8_t *)cref(r, 26), &s1, (const int8_t *)cref(r, 27), &s2,
              (int8_t *)mref(r, 28));
  }
}

static void run_mul(const rctx *r) {
  ek_mul_params p;
  ek_dims4 out;
  ek_strides4 s1, s2;
  p.input1_offset = rw(r, 0);
  p.input2_offset = rw(r, 1);
  p.output_multiplier = rw(r, 2);
  p.output_shift = rw(r, 3);
  p.output_offset = rw(r, 4);
  p.act_min = rw(r, 5);
  p.act_max = rw(r, 6);
  out = rdims(r, 7);
  s1 = rstrides(r, 11);
  s2 = rstrides(r, 15);
  ek_mul_s8(&p, &out, (const int8_t *)cref(r, 21), &s1, (const int8_t *)cref(r, 22), &s2,
            (int8_t *)mref(r, 23));
}

static void run_pad(const rctx *r) {
  ek_pad_params p;
  ek_dims4 in;
  int32_t k;
  for (k = 0; k < 4; k++) {
    p.before[k] = rw(r, (uint32_t)k);
    p.after[k] = rw(r, 4u + (uint32_t)k);
  }
  p.value = rw(r, 8);
  in = rdims(r, 9);
  ek_pad_s8(&p, &in, (const int8_t *)cref(r, 13), (int8_t *)mref(r, 14));
}

static void run_concat(const rctx *r) {
  const int8_t *inputs[EK_PKG_MAX_CONCAT];
  int32_t sizes[EK_PKG_MAX_CONCAT];
  const int32_t n = rw(r, 0);
  int32_t i;
  for (i = 0; i < n; i++) {
    sizes[i] = rw(r, 4u + 2u * (uint32_t)i);
    inputs[i] = (const int8_t *)cref(r, 5u + 2u * (uint32_t)i);
  }
  ek_concatenation_s8(n, inputs, sizes, rw(r, 1), rw(r, 2), (int8_t *)mref(r, 3));
}

static void run_split(const rctx *r) {
  int8_t *outputs[EK_PKG_MAX_SPLIT];
  int32_t sizes[EK_PKG_MAX_SPLIT];
  const int32_t n = rw(r, 0);
  int32_t i;
  for (i = 0; i < n; i++) {
    sizes[i] = rw(r, 4u + 2u * (uint32_t)i);
    outputs[i] = (int8_t *)mref(r, 5u + 2u * (uint32_t)i);
  }
  ek_split_s8(n, outputs, sizes, rw(r, 1), rw(r, 2), (const int8_t *)cref(r, 3));
}

static void run_slice(const rctx *r) {
  ek_slice_params p;
  ek_dims4 in;
  int32_t k;
  for (k = 0; k < 4; k++) {
    p.begin[k] = rw(r, (uint32_t)k);
    p.stride[k] = rw(r, 4u + (uint32_t)k);
    p.size[k] = rw(r, 8u + (uint32_t)k);
  }
  in = rdims(r, 12);
  ek_slice_s8(&p, &in, (const int8_t *)cref(r, 16), (int8_t *)mref(r, 17));
}

static void run_gather(const rctx *r) {
  ek_gather_params p;
  p.batch_size = rw(r, 0);
  p.outer_size = rw(r, 1);
  p.axis_size = rw(r, 2);
  p.inner_size = rw(r, 3);
  p.num_indices = rw(r, 4);
  ek_gather_s8(&p, (const int32_t *)cref(r, 5), (const int8_t *)cref(r, 6), (int8_t *)mref(r, 7));
}

static void run_transpose(const rctx *r) {
  ek_dims4 in = rdims(r, 0);
  int32_t perm[4];
  int32_t k;
  for (k = 0; k < 4; k++) {
    perm[k] = rw(r, 4u + (uint32_t)k);
  }
  ek_transpose_s8(&in, perm, (const int8_t *)cref(r, 8), (int8_t *)mref(r, 9));
}

static void run_mean(const rctx *r) {
  ek_mean_params p;
  ek_dims4 in;
  p.input_offset = rw(r, 0);
  p.output_offset = rw(r, 1);
  p.multiplier = rw(r, 2);
  p.shift = rw(r, 3);
  in = rdims(r, 4);
  ek_mean_s8(&p, &in, rw(r, 8), (const int8_t *)cref(r, 9), (int8_t *)mref(r, 10));
}

static void run_batch_matmul(const rctx *r) {
  ek_batch_matmul_params p;
  ek_dims4 a, b, out;
  p.lhs_offset = rw(r, 0);
  p.rhs_offset = rw(r, 1);
  p.output_offset = rw(r, 2);
  p.multiplier = rw(r, 3);
  p.shift = rw(r, 4);
  p.adj_x = rw(r, 5);
  p.adj_y = rw(r, 6);
  a = rdims(r, 7);
  b = rdims(r, 11);
  out = rdims(r, 15);
  ek_batch_matmul_s8(&p, &a, (const int8_t *)cref(r, 19), &b, (const int8_t *)cref(r, 20), &out,
                     (int8_t *)mref(r, 21));
}

static void run_requant(const rctx *r, int relu) {
  ek_requant_params p;
  p.input_offset = rw(r, 0);
  p.output_offset = rw(r, 1);
  p.multiplier = rw(r, 2);
  p.shift = rw(r, 3);
  p.act_min = rw(r, 4);
  p.act_max = rw(r, 5);
  if (relu) {
    ek_relu_s8(&p, rw(r, 6), (const int8_t *)cref(r, 7), (int8_t *)mref(r, 8));
  } else {
    ek_requantize_s8(&p, rw(r, 6), (const int8_t *)cref(r, 7), (int8_t *)mref(r, 8));
  }
}

static void run_sigmoid(const rctx *r, int tanh_op) {
  ek_sigmoid_params p;
  p.input_offset = rw(r, 0);
  p.input_multiplier = rw(r, 1);
  p.input_left_shift = rw(r, 2);
  p.input_range_radius = rw(r, 3);
  if (tanh_op) {
    ek_tanh_s8(&p, rw(r, 4), (const int8_t *)cref(r, 5), (int8_t *)mref(r, 6));
  } else {
    ek_logistic_s8(&p, rw(r, 4), (const int8_t *)cref(r, 5), (int8_t *)mref(r, 6));
  }
}

/* MAXIMUM, MINIMUM, PRELU, SQUARED_DIFFERENCE, DIV (layout: check_elementwise). */
static void run_elementwise(const rctx *r, uint32_t kind) {
  const uint32_t d = kind == EK_OP_SQUARED_DIFFERENCE ? 12u : (kind == EK_OP_PRELU || kind == EK_OP_DIV ? 7u : 0u);
  const ek_dims4 out = rdims(r, d);
  const ek_strides4 s1 = rstrides(r, d + 4u), s2 = rstrides(r, d + 8u);
  const int8_t *a = (const int8_t *)cref(r, d + 14u);
  const int8_t *b = (const int8_t *)cref(r, d + 15u);
  int8_t *y = (int8_t *)mref(r, d + 16u);
  if (kind == EK_OP_MAXIMUM) {
    ek_maximum_s8(&out, a, &s1, b, &s2, y);
  } else if (kind == EK_OP_MINIMUM) {
    ek_minimum_s8(&out, a, &s1, b, &s2, y);
  } else if (kind == EK_OP_PRELU) {
    ek_prelu_params p;
    p.input_offset = rw(r, 0);
    p.alpha_offset = rw(r, 1);
    p.output_offset = rw(r, 2);
    p.output_multiplier_1 = rw(r, 3);
    p.output_shift_1 = rw(r, 4);
    p.output_multiplier_2 = rw(r, 5);
    p.output_shift_2 = rw(r, 6);
    ek_prelu_s8(&p, &out, a, &s1, b, &s2, y);
  } else if (kind == EK_OP_DIV) {
    ek_mul_params p;
    p.input1_offset = rw(r, 0);
    p.input2_offset = rw(r, 1);
    p.output_multiplier = rw(r, 2);
    p.output_shift = rw(r, 3);
    p.output_offset = rw(r, 4);
    p.act_min = rw(r, 5);
    p.act_max = rw(r, 6);
    ek_div_s8(&p, &out, a, &s1, b, &s2, y);
  } else {
    ek_add_params p;
    p.input1_offset = rw(r, 0);
    p.input2_offset = rw(r, 1);
    p.left_shift = rw(r, 2);
    p.input1_multiplier = rw(r, 3);
    p.input1_shift = rw(r, 4);
    p.input2_multiplier = rw(r, 5);
    p.input2_shift = rw(r, 6);
    p.output_multiplier = rw(r, 7);
    p.output_shift = rw(r, 8);
    p.output_offset = rw(r, 9);
    p.act_min = rw(r, 10);
    p.act_max = rw(r, 11);
    ek_squared_difference_s8(&p, &out, a, &s1, b, &s2, y);
  }
}

static void run_lstm(const rctx *r) {
  ek_lstm_params p;
  int32_t k;
  p.batches = rw(r, 0);
  p.steps = rw(r, 1);
  p.input_size = rw(r, 2);
  p.hidden = rw(r, 3);
  p.time_major = rw(r, 4);
  p.input_offset = rw(r, 5);
  p.hidden_offset = rw(r, 6);
  p.output_offset = rw(r, 7);
  for (k = 0; k < 4; k++) {
    p.input_mult[k] = rw(r, 8u + (uint32_t)k);
    p.input_shift[k] = rw(r, 12u + (uint32_t)k);
    p.recurrent_mult[k] = rw(r, 16u + (uint32_t)k);
    p.recurrent_shift[k] = rw(r, 20u + (uint32_t)k);
  }
  p.forget_mult = rw(r, 24);
  p.forget_shift = rw(r, 25);
  p.input_gate_mult = rw(r, 26);
  p.input_gate_shift = rw(r, 27);
  p.output_mult = rw(r, 28);
  p.output_shift = rw(r, 29);
  p.cell_tanh_multiplier = rw(r, 30);
  p.cell_tanh_shift = rw(r, 31);
  p.use_clip = rw(r, 32);
  p.cell_clip = rw(r, 33);
  ek_lstm_s8(&p, (const int8_t *)cref(r, 34), (const int8_t *)cref(r, 35), (const int8_t *)cref(r, 36),
             (const int32_t *)cref(r, 37), (int8_t *)mref(r, 38));
}

static void run_svdf(const rctx *r) {
  ek_svdf_params p;
  p.batches = rw(r, 0);
  p.input_size = rw(r, 1);
  p.features = rw(r, 2);
  p.rank = rw(r, 3);
  p.input_offset = rw(r, 4);
  p.feature_mult = rw(r, 5);
  p.feature_shift = rw(r, 6);
  p.output_mult = rw(r, 7);
  p.output_shift = rw(r, 8);
  p.output_offset = rw(r, 9);
  ek_svdf_s8(&p, (const int8_t *)cref(r, 10), (const int8_t *)cref(r, 11), (const int32_t *)cref(r, 12),
             (const int32_t *)cref(r, 13), (int8_t *)mref(r, 14));
}

static void run_op(const rctx *r, uint32_t kind) {
  switch (kind) {
    case EK_OP_CONV_2D:
      run_conv(r);
      break;
    case EK_OP_DEPTHWISE_CONV_2D:
      run_depthwise(r);
      break;
    case EK_OP_FULLY_CONNECTED:
      run_fc(r);
      break;
    case EK_OP_AVERAGE_POOL_2D:
      run_pool(r, 1);
      break;
    case EK_OP_MAX_POOL_2D:
      run_pool(r, 0);
      break;
    case EK_OP_ADD:
      run_addsub(r, 0);
      break;
    case EK_OP_SUB:
      run_addsub(r, 1);
      break;
    case EK_OP_MUL:
      run_mul(r);
      break;
    case EK_OP_PAD:
      run_pad(r);
      break;
    case EK_OP_CONCATENATION:
      run_concat(r);
      break;
    case EK_OP_TRANSPOSE:
      run_transpose(r);
      break;
    case EK_OP_MEAN:
      run_mean(r);
      break;
    case EK_OP_SOFTMAX: {
      ek_softmax_params p;
      p.input_multiplier = rw(r, 0);
      p.input_left_shift = rw(r, 1);
      p.diff_min = rw(r, 2);
      ek_softmax_s8(&p, rw(r, 3), rw(r, 4), (const int8_t *)cref(r, 5), (int8_t *)mref(r, 6));
      break;
    }
    case EK_OP_LOGISTIC:
      run_sigmoid(r, 0);
      break;
    case EK_OP_TANH:
      run_sigmoid(r, 1);
      break;
    case EK_OP_RELU:
      run_requant(r, 1);
      break;
    case EK_OP_REQUANTIZE:
      run_requant(r, 0);
      break;
    case EK_OP_RELU6:
      ek_relu6_s8(rw(r, 0), rw(r, 1), rw(r, 2), (const int8_t *)cref(r, 3), (int8_t *)mref(r, 4));
      break;
    case EK_OP_QUANTIZE:
      ek_quantize_f32_s8(rfloat(r, 0), rw(r, 1), rw(r, 2), (const float *)cref(r, 3),
                         (int8_t *)mref(r, 4));
      break;
    case EK_OP_DEQUANTIZE:
      ek_dequantize_s8_f32(rfloat(r, 0), rw(r, 1), rw(r, 2), (const int8_t *)cref(r, 3),
                           (float *)mref(r, 4));
      break;
    case EK_OP_COPY:
      memmove(mref(r, 2), cref(r, 1), (uint32_t)rw(r, 0));
      break;
    case EK_OP_SLICE:
      run_slice(r);
      break;
    case EK_OP_SPLIT:
      run_split(r);
      break;
    case EK_OP_GATHER:
      run_gather(r);
      break;
    case EK_OP_DEPTH_TO_SPACE: {
      const ek_dims4 in = rdims(r, 0);
      ek_depth_to_space_s8(&in, rw(r, 4), (const int8_t *)cref(r, 5), (int8_t *)mref(r, 6));
      break;
    }
    case EK_OP_SPACE_TO_DEPTH: {
      const ek_dims4 in = rdims(r, 0);
      ek_space_to_depth_s8(&in, rw(r, 4), (const int8_t *)cref(r, 5), (int8_t *)mref(r, 6));
      break;
    }
    case EK_OP_CAST_S8_F32:
      ek_cast_s8_f32(rw(r, 0), (const int8_t *)cref(r, 1), (float *)mref(r, 2));
      break;
    case EK_OP_CAST_F32_S8:
      ek_cast_f32_s8(rw(r, 0), (const float *)cref(r, 1), (int8_t *)mref(r, 2));
      break;
    case EK_OP_RESIZE_NEAREST: {
      const ek_dims4 in = rdims(r, 0), out = rdims(r, 4);
      ek_resize_nearest_s8(&in, (const int32_t *)cref(r, 8), (const int32_t *)cref(r, 9), &out,
                           (const int8_t *)cref(r, 10), (int8_t *)mref(r, 11));
      break;
    }
    case EK_OP_RESIZE_BILINEAR: {
      ek_resize_bilinear_params p;
      const ek_dims4 in = rdims(r, 3), out = rdims(r, 7);
      p.scale_10_h = rw(r, 0);
      p.scale_10_w = rw(r, 1);
      p.half_pixel_centers = rw(r, 2);
      ek_resize_bilinear_s8(&p, &in, &out, (const int8_t *)cref(r, 11), (int8_t *)mref(r, 12));
      break;
    }
    case EK_OP_TRANSPOSE_CONV:
      run_transpose_conv(r);
      break;
    case EK_OP_LSTM:
      run_lstm(r);
      break;
    case EK_OP_SVDF:
      run_svdf(r);
      break;
    case EK_OP_REDUCE_MAX: {
      const ek_dims4 in = rdims(r, 0);
      ek_reduce_max_s8(&in, rw(r, 4), (const int8_t *)cref(r, 5), (int8_t *)mref(r, 6));
      break;
    }
    case EK_OP_ARG_MIN_MAX:
      ek_arg_min_max_s8(rw(r, 0), rw(r, 1), rw(r, 2), rw(r, 3), (const int8_t *)cref(r, 4),
                        (int32_t *)mref(r, 5));
      break;
    case EK_OP_L2_NORMALIZATION:
      ek_l2_normalization_s8(rw(r, 0), rw(r, 1), rw(r, 2), (const int8_t *)cref(r, 3),
                             (int8_t *)mref(r, 4));
      break;
    case EK_OP_BATCH_MATMUL:
      run_batch_matmul(r);
      break;
    case EK_OP_LUT:
      ek_lut_s8((const int8_t *)cref(r, 0), rw(r, 1), (const int8_t *)cref(r, 2), (int8_t *)mref(r, 3));
      break;
    case EK_OP_MAXIMUM:
    case EK_OP_MINIMUM:
    case EK_OP_PRELU:
    case EK_OP_SQUARED_DIFFERENCE:
    case EK_OP_DIV:
      run_elementwise(r, kind);
      break;
    default:
      break;
  }
}

int ek_pkg_run(const ek_pkg *pkg, uint8_t *arena, const uint8_t *input, uint8_t *output) {
  const uint8_t *p = pkg->base;
  rctx r;
  uint32_t i;
  for (i = 0; i < pkg->num_inputs; i++) {
    const uint8_t *e = p + pkg->io_table + i * EK_PKG_IO_ENTRY_BYTES;
    const uint32_t bytes = ek_rd32(e + 4);
    memcpy(arena + ek_rd32(e), input, bytes);
    input += bytes;
  }
  r.pkg = p;
  r.arena = arena;
#ifdef EDGEKIT_PROFILE
  edgekit_profile_start();
#endif
  for (i = 0; i < pkg->num_ops; i++) {
    const uint8_t *e = p + pkg->op_table + i * EK_PKG_OP_ENTRY_BYTES;
    r.w = p + ek_rd32(e + 4);
    run_op(&r, ek_rd16(e));
#ifdef EDGEKIT_PROFILE
    edgekit_profile_mark();
#endif
  }
  for (i = 0; i < pkg->num_outputs; i++) {
    const uint8_t *e = p + pkg->io_table + (pkg->num_inputs + i) * EK_PKG_IO_ENTRY_BYTES;
    const uint32_t bytes = ek_rd32(e + 4);
    memcpy(output, arena + ek_rd32(e), bytes);
    output += bytes;
  }
  return 0;
}
