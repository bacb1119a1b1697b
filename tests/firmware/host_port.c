/*
 * The board layer of the host build: the protocol state machine, slots and package
 * executor of firmware/app compiled with the host gcc (with -fsanitize=address,
 * undefined in the tests) and driven from a byte stream.
 *
 *   host_fw [STREAM]     reads the bytes the "device" receives from STREAM (default
 *                        stdin), writes everything it sends to stdout
 *
 * Slot storage behaves like flash: programming a byte that is not erased aborts, so
 * the fuzzer also checks the slot logic never writes a byte twice. A RESET request
 * restarts the protocol (slots kept, as a warm reset keeps them) and prints the
 * banner again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ek_board.h"
#include "ek_proto.h"

static uint8_t slot_mem[EK_SLOT_COUNT][EK_HOST_SLOT_BYTES] __attribute__((aligned(16)));
static uint32_t tick;

void ek_board_init(void) {
}

void ek_uart_write(const uint8_t *data, uint32_t n) {
  if (fwrite(data, 1, n, stdout) != n) {
    abort();
  }
}

int ek_uart_read(void) {
  return -1;
}

void ek_uart_flush(void) {
  fflush(stdout);
}

uint32_t ek_uart_dropped(void) {
  return 0;
}

void ek_board_idle(void) {
}

uint32_t ek_ticks(void) {
  return tick += 7u;
}

void ek_board_reset(void) {
  abort(); /* never called: main() handles RESET */
}

uint32_t ek_stack_size(void) {
  return 0;
}

uint32_t ek_stack_high_water(void) {
  return 0;
}

const uint8_t *ek_slot_base(uint32_t slot) {
  if (slot >= EK_SLOT_COUNT) {
    abort();
  }
  return slot_mem[slot];
}

uint32_t ek_slot_bytes(void) {
  return EK_HOST_SLOT_BYTES;
}

int ek_slot_erase(uint32_t slot, uint32_t offset, uint32_t n) {
  if (slot >= EK_SLOT_COUNT || offset % EK_SLOT_ERASE_UNIT || n % EK_SLOT_ERASE_UNIT ||
      (uint64_t)offset + n > EK_HOST_SLOT_BYTES) {
    abort();
  }
  memset(slot_mem[slot] + offset, 0xFF, n);
  return 0;
}

int ek_slot_program(uint32_t slot, uint32_t offset, const uint8_t *data, uint32_t n) {
  uint32_t i;
  if (slot >= EK_SLOT_COUNT || offset % EK_SLOT_WRITE_UNIT || n % EK_SLOT_WRITE_UNIT ||
      (uint64_t)offset + n > EK_HOST_SLOT_BYTES) {
    abort();
  }
  for (i = 0; i < n; i++) {
    if (slot_mem[slot][offset + i] != 0xFFu) {
      fprintf(stderr, "host_fw: slot %u byte %u programmed twice\n", slot, offset + i);
      abort();
    }
  }
  memcpy(slot_mem[slot] + offset, data, n);
  return 0;
}

static void banner(void) {
  uint8_t b[128];
  ek_uart_write(b, ek_proto_banner(b, sizeof b));
}

int main(int argc, char **argv) {
  FILE *in = stdin;
  int c;
  memset(slot_mem, 0xFF, sizeof slot_mem);
  if (argc > 1) {
    in = fopen(argv[1], "rb");
    if (in == NULL) {
      perror(argv[1]);
      return 2;
    }
  }
  ek_board_init();
  ek_proto_init();
  banner();
  while ((c = fgetc(in)) != EOF) {
    if (ek_proto_feed((uint8_t)c)) {
      ek_proto_init();
      banner();
    }
  }
  fflush(stdout);
  return 0;
}
