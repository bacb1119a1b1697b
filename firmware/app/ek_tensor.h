/*
 * Chunked tensor transfer (docs/serial-protocol.md, INFER_BEGIN .. OUTPUT_READ): an
 * input larger than a frame arrives in chunks, like an upload, into a static tensor
 * buffer; INFER_RUN runs the model on it and keeps the output there for OUTPUT_READ.
 *
 * The buffer holds the input at offset 0 and the output at the next 16-byte boundary
 * after it, so the model reads and writes disjoint bytes. Its size is EK_IO_BYTES
 * (board.h; HELLO announces it as tensor_bytes).
 */
#ifndef EK_TENSOR_H
#define EK_TENSOR_H

#include <stdint.h>

#include "ek_board.h"

#ifndef EK_IO_BYTES
#define EK_IO_BYTES (64u * 1024u)
#endif

/* Result of a tensor operation: 0 or a protocol error code (ek_proto.h), a detail and a
 * message. */
typedef struct {
  uint8_t code;
  uint32_t detail;
  const char *message;
} ek_tensor_result;

/* Bytes of the buffer an input of in bytes and an output of out bytes take. */
uint32_t ek_tensor_footprint(uint32_t in, uint32_t out);

/* Forgets any input and output (boot, RESET). */
void ek_tensor_init(void);

/* INFER_BEGIN: an input of `size` bytes whose CRC-32 is `crc`. If the buffer holds part
 * (or all) of that same input, *offset receives how much (resume); otherwise the
 * buffer starts over and *offset is 0. */
ek_tensor_result ek_tensor_begin(uint32_t size, uint32_t crc, uint32_t *offset);

/* INFER_CHUNK: the same rules as UPLOAD_CHUNK; *next receives the next offset expected,
 * *duplicate is set when the chunk was already held. */
ek_tensor_result ek_tensor_chunk(uint32_t offset, const uint8_t *data, uint32_t n, uint32_t *next,
                                 int *duplicate);

/* INFER_RUN: checks the whole input arrived and its CRC matches, runs the model.
 * *ticks: the inference's timer ticks; *output, *out_bytes, *out_crc: the output held. */
ek_tensor_result ek_tensor_run(uint32_t *ticks, const uint8_t **output, uint32_t *out_bytes,
                               uint32_t *out_crc);

/* OUTPUT_READ: up to `room` bytes of the last output from `offset`; *data and *n receive
 * them. */
ek_tensor_result ek_tensor_read(uint32_t offset, uint32_t length, uint32_t room,
                                const uint8_t **data, uint32_t *n);

#endif /* EK_TENSOR_H */
