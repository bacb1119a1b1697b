/*
 * Model packages (docs/model-package.md): checking one, and running it with the
 * runtimes/micro kernels. A package is read in place (from its slot); nothing is
 * copied but the inputs and outputs.
 */
#ifndef EK_PACKAGE_H
#define EK_PACKAGE_H

#include <stdint.h>

/* Header layout (little-endian), format 2. Bytes 0..7 (magic, format major and minor)
 * sit where they do in every format. */
#define EK_PKG_MAGIC 0x504D4B45u /* "EKMP" */
#define EK_PKG_HEADER_BYTES 160u
#define EK_PKG_PREFIX_BYTES 8u
#define EK_PKG_OFF_MAGIC 0u
#define EK_PKG_OFF_FORMAT_MAJOR 4u
#define EK_PKG_OFF_FORMAT_MINOR 6u
#define EK_PKG_OFF_HEADER_SIZE 8u
#define EK_PKG_OFF_TOTAL_SIZE 12u
#define EK_PKG_OFF_TARGET 16u /* 16 bytes */
#define EK_PKG_OFF_NAME 32u   /* 24 bytes */
#define EK_PKG_OFF_HASH 56u   /* 32 bytes: the SHA-256 of the body */
#define EK_PKG_HASH_BYTES 32u
#define EK_PKG_OFF_ARENA_SIZE 88u
#define EK_PKG_OFF_ALIGNMENT 92u
#define EK_PKG_OFF_FLAGS 96u
#define EK_PKG_OFF_NUM_INPUTS 100u  /* u8 */
#define EK_PKG_OFF_NUM_OUTPUTS 101u /* u8 */
#define EK_PKG_OFF_IO_TABLE 104u
#define EK_PKG_OFF_NUM_OPS 108u
#define EK_PKG_OFF_OP_TABLE 112u
#define EK_PKG_OFF_DATA 116u
#define EK_PKG_OFF_DATA_SIZE 120u
#define EK_PKG_OFF_MACS 124u
#define EK_PKG_OFF_HEADER_CRC 128u /* CRC-32 of the header with this field zero */

#define EK_PKG_IO_ENTRY_BYTES 40u
#define EK_PKG_OP_ENTRY_BYTES 16u
#define EK_PKG_MAX_IO 8u
#define EK_PKG_MAX_OPS 1024u
#define EK_PKG_MAX_CONCAT 16
#define EK_PKG_MAX_SPLIT 32

/* Tensor references inside op parameters. */
#define EK_REF_NONE 0xFFFFFFFFu
#define EK_REF_CONST 0x80000000u /* set: offset into the package; clear: into the arena */

/* Element types of inputs and outputs. */
enum { EK_DTYPE_INT8 = 1, EK_DTYPE_FLOAT32 = 2, EK_DTYPE_INT32 = 3 };

/* Op kinds (one per kernel call shape; see docs/model-package.md). */
enum {
  EK_OP_CONV_2D = 1,
  EK_OP_DEPTHWISE_CONV_2D = 2,
  EK_OP_FULLY_CONNECTED = 3,
  EK_OP_AVERAGE_POOL_2D = 4,
  EK_OP_MAX_POOL_2D = 5,
  EK_OP_ADD = 6,
  EK_OP_SUB = 7,
  EK_OP_MUL = 8,
  EK_OP_PAD = 9,
  EK_OP_CONCATENATION = 10,
  EK_OP_TRANSPOSE = 11,
  EK_OP_MEAN = 12,
  EK_OP_SOFTMAX = 13,
  EK_OP_LOGISTIC = 14,
  EK_OP_TANH = 15,
  EK_OP_RELU = 16,
  EK_OP_RELU6 = 17,
  EK_OP_REQUANTIZE = 18,
  EK_OP_QUANTIZE = 19,
  EK_OP_DEQUANTIZE = 20,
  EK_OP_COPY = 21,
  EK_OP_SLICE = 22,
  EK_OP_SPLIT = 23,
  EK_OP_GATHER = 24,
  EK_OP_DEPTH_TO_SPACE = 25,
  EK_OP_SPACE_TO_DEPTH = 26,
  EK_OP_CAST_S8_F32 = 27,
  EK_OP_CAST_F32_S8 = 28,
  EK_OP_RESIZE_NEAREST = 29,
  EK_OP_RESIZE_BILINEAR = 30,
  EK_OP_TRANSPOSE_CONV = 31,
  EK_OP_LUT = 32,
  EK_OP_MAXIMUM = 33,
  EK_OP_MINIMUM = 34,
  EK_OP_PRELU = 35,
  EK_OP_SQUARED_DIFFERENCE = 36,
  EK_OP_DIV = 37,
  EK_OP_LSTM = 38, /* ek_lstm_s8 */
  EK_OP_SVDF = 39, /* ek_svdf_s8 */
  EK_OP_REDUCE_MAX = 40,       /* ek_reduce_max_s8 */
  EK_OP_ARG_MIN_MAX = 41,      /* ek_arg_min_max_s8 */
  EK_OP_L2_NORMALIZATION = 42, /* ek_l2_normalization_s8 */
  EK_OP_BATCH_MATMUL = 43,     /* ek_batch_matmul_s8 */
  EK_OP_KIND_COUNT
};

/* Why a package was refused: the code of docs/model-package.md ("reason") and a
 * short message. */
typedef struct {
  uint32_t reason;
  /* index of the op at fault, or 0xFFFFFFFF; for EK_PKG_E_FORMAT the package's
   * format_major (low byte) and the one this firmware runs (next byte) */
  uint32_t op;
  const char *message;
} ek_pkg_error;

enum {
  EK_PKG_OK = 0,
  EK_PKG_E_SIZE = 1,      /* shorter than a header, or total_size differs */
  EK_PKG_E_MAGIC = 2,
  EK_PKG_E_FORMAT = 3,    /* unsupported format major version (format 1: 8-byte model_hash) */
  EK_PKG_E_HEADER_CRC = 4,
  EK_PKG_E_TARGET = 5,    /* built for another target */
  EK_PKG_E_ARENA = 6,     /* needs a larger arena than this firmware has */
  EK_PKG_E_IO = 7,        /* input/output table invalid, or tensors over the tensor buffer */
  EK_PKG_E_TABLE = 8,     /* op table or data region out of bounds */
  EK_PKG_E_OP_KIND = 9,   /* op kind this firmware does not know */
  EK_PKG_E_OP_PARAMS = 10, /* op parameters invalid (reference out of bounds, ...) */
  EK_PKG_E_HASH = 11       /* the body's SHA-256 differs from model_hash (ek_slots.c) */
};

/* An opened (checked) package. */
typedef struct {
  const uint8_t *base;
  uint32_t size;
  uint32_t arena_size;
  uint32_t num_inputs, num_outputs;
  uint32_t input_bytes, output_bytes; /* all inputs / outputs, concatenated */
  uint32_t num_ops;
  uint32_t op_table;
  uint32_t io_table;
} ek_pkg;

/* Limits a package must fit in. */
typedef struct {
  const char *target;
  uint32_t arena_bytes;
  /* Bytes the inputs (rounded up to 16) and the outputs may take together: the
   * firmware's tensor buffer (ek_tensor.h). */
  uint32_t max_io_bytes;
} ek_pkg_limits;

/* Checks everything the executor relies on: header, tables, every op's parameters
 * and references. Fills *pkg on success (returns 0), else *err (returns nonzero).
 * A package that passes runs without reading or writing outside itself and the
 * arena. */
int ek_pkg_open(const uint8_t *data, uint32_t size, const ek_pkg_limits *limits, ek_pkg *pkg,
                ek_pkg_error *err);

/* Runs an opened package: inputs (concatenated, in package order) are copied into the
 * arena, the ops run in order, the outputs are copied out. Returns 0. */
int ek_pkg_run(const ek_pkg *pkg, uint8_t *arena, const uint8_t *input, uint8_t *output);

/* Little-endian reads of package bytes (any alignment). */
static inline uint32_t ek_rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint32_t ek_rd16(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

#endif /* EK_PACKAGE_H */
