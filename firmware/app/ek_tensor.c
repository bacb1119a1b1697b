/* Chunked tensor transfer: INFER_BEGIN, INFER_CHUNK, INFER_RUN, OUTPUT_READ. */
#include "ek_tensor.h"

#include <string.h>

#include "ek_crc32.h"
#include "ek_model.h"
#include "ek_proto.h"

static uint8_t io[EK_IO_BYTES] __attribute__((aligned(16)));

static struct {
  uint8_t begun;       /* an INFER_BEGIN set up an input */
  uint32_t size, crc;  /* the input's, from INFER_BEGIN */
  uint32_t held;       /* input bytes received, from offset 0 */
  uint32_t out_bytes;  /* 0: no output held */
  uint32_t out_at;     /* where the output starts in io */
} t;

static ek_tensor_result ok(void) {
  ek_tensor_result r = {0u, 0u, ""};
  return r;
}

static ek_tensor_result fail(uint8_t code, uint32_t detail, const char *message) {
  ek_tensor_result r;
  r.code = code;
  r.detail = detail;
  r.message = message;
  return r;
}

static uint32_t align16(uint32_t n) {
  return (n + 15u) & ~15u;
}

uint32_t ek_tensor_footprint(uint32_t in, uint32_t out) {
  return align16(in) + out;
}

void ek_tensor_init(void) {
  memset(&t, 0, sizeof t);
}

ek_tensor_result ek_tensor_begin(uint32_t size, uint32_t crc, uint32_t *offset) {
  ek_model_shape shape;
  if (ek_model_get(&shape) != 0) {
    return fail(EK_E_NO_MODEL, 0u, "no active model");
  }
  if (size != shape.input_bytes) {
    return fail(EK_E_TOO_LARGE, shape.input_bytes, "input size differs from the model's");
  }
  if (ek_tensor_footprint(shape.input_bytes, shape.output_bytes) > EK_IO_BYTES) {
    return fail(EK_E_TOO_LARGE, EK_IO_BYTES, "input and output exceed the tensor buffer");
  }
  if (!(t.begun && t.size == size && t.crc == crc)) {
    /* Another input: start over. The same one (a host that reconnected) resumes. */
    t.begun = 1u;
    t.size = size;
    t.crc = crc;
    t.held = 0u;
    t.out_bytes = 0u;
  }
  *offset = t.held;
  return ok();
}

ek_tensor_result ek_tensor_chunk(uint32_t offset, const uint8_t *data, uint32_t n, uint32_t *next,
                                 int *duplicate) {
  *duplicate = 0;
  if (!t.begun) {
    return fail(EK_E_STATE, 0u, "INFER_CHUNK without INFER_BEGIN");
  }
  if ((uint64_t)offset + n > t.size) {
    return fail(EK_E_TOO_LARGE, t.size, "chunk runs past the input's size");
  }
  if (offset > t.held) {
    return fail(EK_E_OFFSET, t.held, "chunk past the expected offset");
  }
  if (offset < t.held) {
    /* A chunk sent again: acknowledge it if it matches what is held. */
    const uint32_t overlap = (t.held - offset < n) ? t.held - offset : n;
    if (memcmp(io + offset, data, overlap) != 0) {
      return fail(EK_E_OFFSET, t.held, "chunk differs from the bytes held");
    }
    *duplicate = 1;
    data += overlap;
    n -= overlap;
  }
  memcpy(io + t.held, data, n);
  t.held += n;
  *next = t.held;
  return ok();
}

ek_tensor_result ek_tensor_run(uint32_t *ticks, const uint8_t **output, uint32_t *out_bytes,
                               uint32_t *out_crc) {
  ek_model_shape shape;
  uint32_t t0, t1, crc;
  int rc;
  if (!t.begun) {
    return fail(EK_E_STATE, 0u, "INFER_RUN without INFER_BEGIN");
  }
  if (t.held < t.size) {
    return fail(EK_E_OFFSET, t.held, "input incomplete");
  }
  if (ek_model_get(&shape) != 0) {
    return fail(EK_E_NO_MODEL, 0u, "no active model");
  }
  if (shape.input_bytes != t.size || ek_tensor_footprint(t.size, shape.output_bytes) > EK_IO_BYTES) {
    t.begun = 0u; /* a new model was committed since INFER_BEGIN */
    return fail(EK_E_STATE, shape.input_bytes, "the active model changed; begin again");
  }
  crc = ek_crc32(io, t.size);
  if (crc != t.crc) {
    t.begun = 0u; /* the host sends the input again from offset 0 */
    return fail(EK_E_CRC, crc, "input CRC mismatch");
  }
  t.out_at = align16(t.size);
  /* The barriers keep the compiler from moving work across the timer reads. */
  __asm__ volatile("" ::: "memory");
  t0 = ek_ticks();
  __asm__ volatile("" ::: "memory");
  rc = ek_model_invoke(io, io + t.out_at);
  __asm__ volatile("" ::: "memory");
  t1 = ek_ticks();
  __asm__ volatile("" ::: "memory");
  if (rc != 0) {
    t.out_bytes = 0u;
    return fail(EK_E_INFER, (uint32_t)rc, "the model failed");
  }
  t.out_bytes = shape.output_bytes;
  *ticks = t1 - t0;
  *output = io + t.out_at;
  *out_bytes = t.out_bytes;
  *out_crc = ek_crc32(io + t.out_at, t.out_bytes);
  return ok();
}

ek_tensor_result ek_tensor_read(uint32_t offset, uint32_t length, uint32_t room,
                                const uint8_t **data, uint32_t *n) {
  uint32_t left;
  if (t.out_bytes == 0u) {
    return fail(EK_E_STATE, 0u, "no output: INFER_RUN first");
  }
  if (offset > t.out_bytes) {
    return fail(EK_E_OFFSET, t.out_bytes, "offset past the output");
  }
  left = t.out_bytes - offset;
  if (length > left) {
    length = left;
  }
  if (length > room) {
    length = room;
  }
  *data = io + t.out_at + offset;
  *n = length;
  return ok();
}
