/* Serial protocol v1: framing, duplicate cache, command dispatch. */
#include "ek_proto.h"

#include <string.h>

#include "ek_board.h"
#include "ek_cobs.h"
#include "ek_crc32.h"
#include "ek_model.h"
#include "ek_package.h"
#include "ek_profile.h"
#include "ek_tensor.h"
#include "ek_version.h"
#ifdef EK_LINKED_MODEL
#include "ek_model_linked.h"
#else
#include "ek_slots.h"
#endif

/* Request payload malformed (too short for its type); see the protocol doc. */
#define EK_E_PAYLOAD 11

#define HELLO_BYTES 56u /* 48 in firmware 0.1.0: no capabilities, tensor_bytes */
#define SLOT_INFO_BYTES 41u

#if EK_MAX_PAYLOAD < 256u || EK_MAX_PAYLOAD > 65535u
#error "EK_MAX_PAYLOAD must be in [256, 65535]"
#endif

static uint8_t rx[EK_ENCODED_MAX]; /* the encoded run being received, then its frame */
static uint32_t rx_len;
static uint8_t rx_overflow;

static uint8_t frame[EK_FRAME_MAX];         /* the response being built */
static uint8_t tx[EK_ENCODED_MAX + 1u];     /* the last response, encoded */
static uint32_t tx_len;
static uint8_t have_last;
static uint16_t last_seq;
static uint32_t last_crc;

static ek_stats stats;

/* ------------------------------------------------------------------ helpers */

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void put_text(uint8_t *p, const char *s, uint32_t room) {
  uint32_t i = 0;
  memset(p, 0, room);
  while (i < room && s[i] != '\0') {
    p[i] = (uint8_t)s[i];
    i++;
  }
}

/* Frames, encodes and sends a message whose payload lies at frame + 6. Returns the
 * encoded length in out (delimiter included). */
static uint32_t emit(uint8_t type, uint16_t seq, uint32_t n, uint8_t *out) {
  uint32_t len;
  frame[0] = EK_PROTOCOL_VERSION;
  frame[1] = type;
  put16(frame + 2, seq);
  put16(frame + 4, n);
  put32(frame + 6 + n, ek_crc32(frame, 6u + n));
  len = ek_cobs_encode(frame, n + EK_FRAME_OVERHEAD, out);
  out[len++] = 0u;
  ek_uart_write(out, len);
  return len;
}

static void send_nak(void) {
  uint8_t nak[EK_FRAME_OVERHEAD + 3u];
  stats.naks++;
  (void)emit(EK_MSG_NAK, 0xFFFFu, 0, nak);
}

/* Response payload builder. */
typedef struct {
  uint8_t type;
  uint32_t n;
  int reset;
} reply;

static uint8_t *payload(void) {
  return frame + 6;
}

static void error_reply(reply *r, uint8_t code, uint32_t detail, const char *message) {
  uint8_t *p = payload();
  uint32_t m = 0;
  p[0] = code;
  put32(p + 1, detail);
  while (m < 64u && message[m] != '\0') {
    p[5 + m] = (uint8_t)message[m];
    m++;
  }
  r->type = EK_MSG_ERROR;
  r->n = 5u + m;
}

/* ------------------------------------------------------------------ commands */

static void cmd_hello(reply *r, const uint8_t *req, uint32_t n) {
  uint8_t *p = payload();
  if (n < 1u) {
    error_reply(r, EK_E_PAYLOAD, n, "HELLO needs the host's protocol version");
    return;
  }
  if (req[0] < EK_PROTOCOL_VERSION) {
    error_reply(r, EK_E_VERSION, EK_PROTOCOL_VERSION, "device speaks protocol version 1");
    return;
  }
  p[0] = EK_PROTOCOL_VERSION;
  p[1] = EK_FW_MAJOR;
  p[2] = EK_FW_MINOR;
  p[3] = EK_FW_PATCH;
  put16(p + 4, EK_MAX_PAYLOAD);
  p[6] = EK_WINDOW;
#ifdef EK_LINKED_MODEL
  p[7] = 1;
  put32(p + 8, 0);
#else
  p[7] = EK_SLOT_COUNT;
  put32(p + 8, ek_slots_capacity());
#endif
  put32(p + 12, ek_model_arena_capacity());
  put_text(p + 16, EK_TARGET_NAME, 16);
  put_text(p + 32, EK_BOARD_NAME, 16);
#ifdef EDGEKIT_PROFILE
  put32(p + 48, EK_CAP_CHUNKED_TENSORS | EK_CAP_PROFILE);
#else
  put32(p + 48, EK_CAP_CHUNKED_TENSORS);
#endif
  put32(p + 52, EK_IO_BYTES); /* tensor_bytes: the chunked input and output fit in it */
  r->n = HELLO_BYTES;
}

static void cmd_info(reply *r) {
  uint8_t *p = payload();
  uint8_t *q;
  ek_model_shape shape;
  uint32_t used = ek_model_get(&shape) == 0 ? shape.arena_used : 0u;
#ifdef EK_LINKED_MODEL
  p[0] = 0;
  p[1] = 1;
  q = p + 2;
  q[0] = 3; /* active */
  put32(q + 1, EK_LINKED_SIZE);
  put32(q + 5, 0);
  memcpy(q + 9, ek_linked_name, 24);
  memcpy(q + 33, ek_linked_hash, 8);
  q += SLOT_INFO_BYTES;
#else
  uint32_t s;
  const int active = ek_slots_active();
  p[0] = active < 0 ? 0xFFu : (uint8_t)active;
  p[1] = EK_SLOT_COUNT;
  q = p + 2;
  for (s = 0; s < EK_SLOT_COUNT; s++) {
    const ek_slot_info *si = ek_slots_info(s);
    q[0] = si->state;
    put32(q + 1, si->size);
    put32(q + 5, si->crc);
    memcpy(q + 9, si->name, 24);
    memcpy(q + 33, si->hash, 8);
    q += SLOT_INFO_BYTES;
  }
#endif
  put32(q, ek_model_arena_capacity());
  put32(q + 4, used);
  put32(q + 8, ek_stack_size());
  put32(q + 12, ek_stack_high_water());
  r->n = (uint32_t)(q + 16 - p);
}

static void cmd_stats(reply *r) {
  uint8_t *p = payload();
  put32(p, stats.frames_ok);
  put32(p + 4, stats.frames_bad);
  put32(p + 8, stats.naks);
  put32(p + 12, stats.duplicates);
  put32(p + 16, stats.inferences);
  put32(p + 20, stats.last_ticks);
  put32(p + 24, EK_TICK_HZ);
  put32(p + 28, ek_ticks());
  put32(p + 32, ek_uart_dropped()); /* uart_dropped: trailing field added in 0.1.0 */
  r->n = 36;
}

static void cmd_infer(reply *r, const uint8_t *req, uint32_t n) {
  uint8_t *p = payload();
  ek_model_shape shape;
  uint32_t t0, t1;
  int rc;
  if (ek_model_get(&shape) != 0) {
    error_reply(r, EK_E_NO_MODEL, 0, "no active model");
    return;
  }
  if (n != shape.input_bytes) {
    error_reply(r, EK_E_TOO_LARGE, shape.input_bytes, "input size differs from the model's");
    return;
  }
  if (shape.output_bytes + 5u > EK_MAX_PAYLOAD) {
    error_reply(r, EK_E_INFER, shape.output_bytes, "output larger than a frame: use INFER_RUN");
    return;
  }
  /* The barriers keep the compiler from moving work across the timer reads. */
  __asm__ volatile("" ::: "memory");
  t0 = ek_ticks();
  __asm__ volatile("" ::: "memory");
  rc = ek_model_invoke(req, p + 5);
  __asm__ volatile("" ::: "memory");
  t1 = ek_ticks();
  __asm__ volatile("" ::: "memory");
  if (rc != 0) {
    error_reply(r, EK_E_INFER, (uint32_t)rc, "the model failed");
    return;
  }
  stats.inferences++;
  stats.last_ticks = t1 - t0;
  p[0] = 0;
  put32(p + 1, stats.last_ticks);
  r->n = 5u + shape.output_bytes;
}

/* Chunked tensors (ek_tensor.h): an input or output larger than a frame. */
static void tensor_reply(reply *r, ek_tensor_result res) {
  error_reply(r, res.code, res.detail, res.message);
}

static void cmd_infer_begin(reply *r, const uint8_t *req, uint32_t n) {
  ek_tensor_result res;
  uint32_t offset = 0;
  if (n < 8u) {
    error_reply(r, EK_E_PAYLOAD, n, "INFER_BEGIN needs the input's size and crc");
    return;
  }
  res = ek_tensor_begin(ek_rd32(req), ek_rd32(req + 4), &offset);
  if (res.code != 0u) {
    tensor_reply(r, res);
    return;
  }
  put32(payload(), offset);
  r->n = 4;
}

static void cmd_infer_chunk(reply *r, const uint8_t *req, uint32_t n) {
  ek_tensor_result res;
  uint32_t next = 0;
  int dup = 0;
  if (n < 4u) {
    error_reply(r, EK_E_PAYLOAD, n, "INFER_CHUNK needs an offset");
    return;
  }
  res = ek_tensor_chunk(ek_rd32(req), req + 4, n - 4u, &next, &dup);
  if (res.code != 0u) {
    tensor_reply(r, res);
    return;
  }
  if (dup) {
    stats.duplicates++;
  }
  put32(payload(), next);
  r->n = 4;
}

/* Response: status u8, ticks u32, output_bytes u32, output_crc u32, then the output
 * itself when it fits in this frame (else the host reads it with OUTPUT_READ). */
static void cmd_infer_run(reply *r) {
  uint8_t *p = payload();
  const uint8_t *out = 0;
  uint32_t ticks = 0, out_bytes = 0, out_crc = 0;
  ek_tensor_result res = ek_tensor_run(&ticks, &out, &out_bytes, &out_crc);
  if (res.code != 0u) {
    tensor_reply(r, res);
    return;
  }
  stats.inferences++;
  stats.last_ticks = ticks;
  p[0] = 0;
  put32(p + 1, ticks);
  put32(p + 5, out_bytes);
  put32(p + 9, out_crc);
  r->n = 13;
  if (13u + out_bytes <= EK_MAX_PAYLOAD) {
    memcpy(p + 13, out, out_bytes);
    r->n += out_bytes;
  }
}

#ifdef EDGEKIT_PROFILE
/* Request: first op u32 (optional, 0 when absent). Response: ops u32 (timed in the
 * last inference), first u32, count u32, then count ticks u32 from op first on, as
 * many as fit in a frame. */
static void cmd_profile(reply *r, const uint8_t *req, uint32_t n) {
  uint8_t *p = payload();
  const uint32_t ops = ek_profile_ops();
  const uint32_t first = n >= 4u ? ek_rd32(req) : 0u;
  uint32_t count = 0;
  if (first > ops) {
    error_reply(r, EK_E_OFFSET, ops, "PROFILE: first op past the ops timed");
    return;
  }
  while (first + count < ops && 12u + 4u * (count + 1u) <= EK_MAX_PAYLOAD) {
    put32(p + 12u + 4u * count, ek_profile_ticks(first + count));
    count++;
  }
  put32(p, ops);
  put32(p + 4, first);
  put32(p + 8, count);
  r->n = 12u + 4u * count;
}
#endif

/* Request: offset u32, length u32. Response: offset u32, then the bytes. */
static void cmd_output_read(reply *r, const uint8_t *req, uint32_t n) {
  const uint8_t *data = 0;
  uint32_t got = 0, offset;
  ek_tensor_result res;
  if (n < 8u) {
    error_reply(r, EK_E_PAYLOAD, n, "OUTPUT_READ needs an offset and a length");
    return;
  }
  offset = ek_rd32(req);
  res = ek_tensor_read(offset, ek_rd32(req + 4), EK_MAX_PAYLOAD - 4u, &data, &got);
  if (res.code != 0u) {
    tensor_reply(r, res);
    return;
  }
  put32(payload(), offset);
  memcpy(payload() + 4, data, got);
  r->n = 4u + got;
}

#ifndef EK_LINKED_MODEL
static void slot_reply(reply *r, ek_slot_result res) {
  error_reply(r, res.code, res.detail, res.message);
}

static void cmd_upload(reply *r, uint8_t type, const uint8_t *req, uint32_t n) {
  uint8_t *p = payload();
  ek_slot_result res;
  uint8_t slot = 0;
  uint32_t v = 0;
  int dup = 0;
  switch (type) {
    case EK_MSG_UPLOAD_BEGIN:
      if (n < 32u) {
        error_reply(r, EK_E_PAYLOAD, n, "UPLOAD_BEGIN needs size, crc and name");
        return;
      }
      res = ek_slots_begin(ek_rd32(req), ek_rd32(req + 4), req + 8, &slot, &v);
      if (res.code == 0u) {
        p[0] = slot;
        put32(p + 1, v);
        r->n = 5;
        return;
      }
      break;
    case EK_MSG_UPLOAD_CHUNK:
      if (n < 4u) {
        error_reply(r, EK_E_PAYLOAD, n, "UPLOAD_CHUNK needs an offset");
        return;
      }
      res = ek_slots_chunk(ek_rd32(req), req + 4, n - 4u, &v, &dup);
      if (res.code == 0u) {
        if (dup) {
          stats.duplicates++;
        }
        put32(p, v);
        r->n = 4;
        return;
      }
      break;
    case EK_MSG_UPLOAD_COMMIT:
      /* Optional size u32, crc u32: the package the host means (idempotent COMMIT). */
      res = ek_slots_commit(n >= 8u, n >= 8u ? ek_rd32(req) : 0u, n >= 8u ? ek_rd32(req + 4) : 0u,
                            &slot);
      if (res.code == 0u) {
        p[0] = slot;
        r->n = 1;
        return;
      }
      break;
    default: /* EK_MSG_UPLOAD_ABORT */
      res = ek_slots_abort();
      if (res.code == 0u) {
        r->n = 0;
        return;
      }
      break;
  }
  slot_reply(r, res);
}
#endif

static void dispatch(uint8_t type, uint16_t seq, const uint8_t *req, uint32_t n) {
  reply r;
  r.type = (uint8_t)(type | EK_MSG_RESPONSE);
  r.n = 0;
  r.reset = 0;
  switch (type) {
    case EK_MSG_HELLO:
      cmd_hello(&r, req, n);
      break;
    case EK_MSG_INFO:
      cmd_info(&r);
      break;
    case EK_MSG_STATS:
      cmd_stats(&r);
      break;
    case EK_MSG_UPLOAD_BEGIN:
    case EK_MSG_UPLOAD_CHUNK:
    case EK_MSG_UPLOAD_COMMIT:
    case EK_MSG_UPLOAD_ABORT:
#ifdef EK_LINKED_MODEL
      error_reply(&r, EK_E_STATE, 0, "the model is linked into this firmware");
#else
      cmd_upload(&r, type, req, n);
#endif
      break;
    case EK_MSG_INFER:
      cmd_infer(&r, req, n);
      break;
    case EK_MSG_INFER_BEGIN:
      cmd_infer_begin(&r, req, n);
      break;
    case EK_MSG_INFER_CHUNK:
      cmd_infer_chunk(&r, req, n);
      break;
    case EK_MSG_INFER_RUN:
      cmd_infer_run(&r);
      break;
    case EK_MSG_OUTPUT_READ:
      cmd_output_read(&r, req, n);
      break;
#ifdef EDGEKIT_PROFILE
    case EK_MSG_PROFILE:
      cmd_profile(&r, req, n);
      break;
#endif
    case EK_MSG_RESET:
      r.reset = 1;
      break;
    default:
      error_reply(&r, EK_E_UNKNOWN, type, "unknown message type");
      break;
  }
  tx_len = emit(r.type, seq, r.n, tx);
  if (r.reset) {
    have_last = 0;
  }
}

/* ------------------------------------------------------------------ receiving */

static int frame_received(void) {
  int32_t n;
  uint32_t length, crc;
  uint16_t seq;
  if (rx_overflow) {
    return -1;
  }
  n = ek_cobs_decode(rx, rx_len, rx);
  if (n < (int32_t)EK_FRAME_OVERHEAD || rx[0] != EK_PROTOCOL_VERSION) {
    return -1;
  }
  length = ek_rd16(rx + 4);
  if (length != (uint32_t)n - EK_FRAME_OVERHEAD || length > EK_MAX_PAYLOAD) {
    return -1;
  }
  crc = ek_rd32(rx + 6 + length);
  if (ek_crc32(rx, 6u + length) != crc) {
    return -1;
  }
  stats.frames_ok++;
  seq = (uint16_t)ek_rd16(rx + 2);
  if (have_last && seq == last_seq && crc == last_crc) {
    /* A retransmission of the last request: answer it again, do not run it again. */
    stats.duplicates++;
    ek_uart_write(tx, tx_len);
    return 0;
  }
  dispatch(rx[1], seq, rx + 6, length);
  if (rx[1] == EK_MSG_RESET) {
    return 1;
  }
  have_last = 1;
  last_seq = seq;
  last_crc = crc;
  return 0;
}

int ek_proto_feed(uint8_t byte) {
  int rc = 0;
  if (byte != 0u) {
    if (rx_len < sizeof rx) {
      rx[rx_len++] = byte;
    } else {
      rx_overflow = 1; /* too long for any frame: dropped at the next delimiter */
    }
    return 0;
  }
  if (rx_len > 0u || rx_overflow) {
    rc = frame_received();
    if (rc < 0) {
      stats.frames_bad++;
      send_nak();
      rc = 0;
    }
  }
  rx_len = 0;
  rx_overflow = 0;
  return rc;
}

const ek_stats *ek_proto_stats(void) {
  return &stats;
}

static uint32_t put_uint(uint8_t *out, uint32_t v) {
  char digits[10];
  uint32_t n = 0, i;
  do {
    digits[n++] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  for (i = 0; i < n; i++) {
    out[i] = (uint8_t)digits[n - 1u - i];
  }
  return n;
}

static uint32_t put_str(uint8_t *out, const char *s) {
  uint32_t n = 0;
  while (s[n] != '\0') {
    out[n] = (uint8_t)s[n];
    n++;
  }
  return n;
}

uint32_t ek_proto_banner(uint8_t *out, uint32_t room) {
  uint8_t line[128];
  uint32_t n = 0;
  n += put_str(line + n, "edgekit-fw ");
  n += put_uint(line + n, EK_FW_MAJOR);
  line[n++] = '.';
  n += put_uint(line + n, EK_FW_MINOR);
  line[n++] = '.';
  n += put_uint(line + n, EK_FW_PATCH);
  n += put_str(line + n, " proto ");
  n += put_uint(line + n, EK_PROTOCOL_VERSION);
  n += put_str(line + n, " target ");
  n += put_str(line + n, EK_TARGET_NAME);
  n += put_str(line + n, " board ");
  n += put_str(line + n, EK_BOARD_NAME);
  line[n++] = '\n';
  line[n++] = 0u;
  if (n > room) {
    n = room;
  }
  memcpy(out, line, n);
  return n;
}

void ek_proto_init(void) {
#ifndef EK_LINKED_MODEL
  ek_pkg_limits limits;
  limits.target = EK_TARGET_NAME;
  limits.arena_bytes = ek_model_arena_capacity();
  /* Inputs and outputs of any size travel in chunks (ek_tensor.h): what bounds them is
   * the tensor buffer. */
  limits.max_io_bytes = EK_IO_BYTES;
  ek_slots_init(&limits);
#endif
  ek_tensor_init();
  rx_len = 0;
  rx_overflow = 0;
  have_last = 0;
  memset(&stats, 0, sizeof stats);
}
