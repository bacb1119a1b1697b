/*
 * The serial protocol, version 1 (docs/serial-protocol.md): COBS framing with a
 * CRC-32 per frame, the duplicate-request cache, and the command handlers.
 *
 * Board independent: the device build feeds it bytes from the UART, the host build
 * (tests/firmware) from a file, and both get the responses through ek_uart_write.
 */
#ifndef EK_PROTO_H
#define EK_PROTO_H

#include <stdint.h>

#ifndef EK_MAX_PAYLOAD
#define EK_MAX_PAYLOAD 1024u
#endif
#ifndef EK_WINDOW
#define EK_WINDOW 4u
#endif

#define EK_FRAME_OVERHEAD 10u /* version, type, seq, length, crc */
#define EK_FRAME_MAX (EK_MAX_PAYLOAD + EK_FRAME_OVERHEAD)
/* Largest encoded frame without its delimiter. */
#define EK_ENCODED_MAX (EK_FRAME_MAX + (EK_FRAME_MAX + 253u) / 254u + 1u)

/* Message types. */
enum {
  EK_MSG_HELLO = 0x01,
  EK_MSG_INFO = 0x02,
  EK_MSG_STATS = 0x03,
  EK_MSG_UPLOAD_BEGIN = 0x10,
  EK_MSG_UPLOAD_CHUNK = 0x11,
  EK_MSG_UPLOAD_COMMIT = 0x12,
  EK_MSG_UPLOAD_ABORT = 0x13,
  EK_MSG_INFER = 0x20,
  EK_MSG_INFER_BEGIN = 0x21, /* chunked tensors: ek_tensor.h */
  EK_MSG_INFER_CHUNK = 0x22,
  EK_MSG_INFER_RUN = 0x23,
  EK_MSG_OUTPUT_READ = 0x24,
  EK_MSG_PROFILE = 0x25, /* per-op ticks of the last inference: profiling builds */
  EK_MSG_RESET = 0x30,
  EK_MSG_NAK = 0x7E,
  EK_MSG_ERROR = 0x7F,
  EK_MSG_RESPONSE = 0x80
};

/* Error codes. */
enum {
  EK_E_VERSION = 1,
  EK_E_UNKNOWN = 2,
  EK_E_STATE = 3,
  EK_E_OFFSET = 4,
  EK_E_TOO_LARGE = 5,
  EK_E_CRC = 6,
  EK_E_HEADER = 7,
  EK_E_NO_MODEL = 8,
  EK_E_INFER = 9,
  EK_E_BUSY = 10
};

/* HELLO capabilities (a trailing field): what this firmware does beyond protocol v1's
 * first message set. */
#define EK_CAP_CHUNKED_TENSORS 0x1u /* INFER_BEGIN, INFER_CHUNK, INFER_RUN, OUTPUT_READ */
#define EK_CAP_PROFILE 0x2u /* PROFILE: built with EDGEKIT_PROFILE (edgekit build-firmware --profile) */

typedef struct {
  uint32_t frames_ok, frames_bad, naks, duplicates, inferences, last_ticks;
} ek_stats;

/* Sets up the protocol state and the model slots; call once after ek_board_init. */
void ek_proto_init(void);

/* Feeds one received byte. Returns 1 when a RESET request was answered (the caller
 * then flushes the UART and resets the board), else 0. */
int ek_proto_feed(uint8_t byte);

const ek_stats *ek_proto_stats(void);

/* The boot banner (docs/serial-protocol.md section 6), with its "\n" and the 0x00
 * that follows it; returns its length. */
uint32_t ek_proto_banner(uint8_t *out, uint32_t room);

#endif /* EK_PROTO_H */
