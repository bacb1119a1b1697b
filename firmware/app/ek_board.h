/*
 * What a board port provides to the application (firmware/boards/<board>/).
 *
 * A port is a folder with board.h (the constants below), board.json (how to build
 * it), link.ld (stack and model slots; FLASH and RAM come from the target file through
 * boards/shared/memory.ld), uart.c and timer.c; firmware/boards/shared/ holds the one
 * start-up (vector table, reset handler) and the drivers several ports reuse. The host
 * build of the protocol (tests/firmware/host_port.c) implements the same functions.
 *
 * board.h must define:
 *   EK_BOARD_NAME       "mps2-an386"        (HELLO, banner; at most 15 characters)
 *   EK_TARGET_NAME      "cortex-m4"         (targets/<name>.toml; packages must match)
 *   EK_TICK_HZ          timer ticks per second (STATS tick_hz)
 *   EK_SLOT_COUNT       model slots (2: A/B)
 *   EK_SLOT_ERASE_UNIT  bytes erased at once in slot storage (a flash page)
 *   EK_SLOT_WRITE_UNIT  bytes programmed at once (power of two: 1 for RAM, 8 for
 *                       STM32L4 flash double words)
 *   EK_ARENA_BYTES      activation arena of the model-slot executor
 *   EK_IO_BYTES         tensor buffer of chunked inputs and outputs (ek_tensor.h)
 *   EK_IRQ_COUNT        external interrupts in the vector table (shared/startup.c)
 *   EK_UART_IRQ         the one the UART receives on
 */
#ifndef EK_BOARD_H
#define EK_BOARD_H

#include <stdint.h>

#include "board.h"

/* Clocks, UART (TX and RX enabled, RX interrupt on), timer, interrupts on. */
void ek_board_init(void);

/* UART: blocking write of n bytes; the next received byte or -1 when none is
 * buffered (never blocks); wait until every written byte has left. */
void ek_uart_write(const uint8_t *data, uint32_t n);
int ek_uart_read(void);
void ek_uart_flush(void);
/* Bytes lost on reception (ring buffer full, hardware overrun). */
uint32_t ek_uart_dropped(void);

/* Sleeps until an interrupt when no received byte is waiting (returns at once
 * otherwise). */
void ek_board_idle(void);

/* Free-running timer: EK_TICK_HZ ticks per second, wraps at 2^32. */
uint32_t ek_ticks(void);

/* System reset; does not return. */
void ek_board_reset(void) __attribute__((noreturn));

/* Stack: its size and the most of it ever used (by painting at reset). */
uint32_t ek_stack_size(void);
uint32_t ek_stack_high_water(void);

/*
 * Slot storage: EK_SLOT_COUNT regions of ek_slot_bytes() bytes each, readable in
 * place (memory-mapped) at ek_slot_base(slot). On QEMU they are RAM; on a real board
 * they are flash pages, and these two hooks are the flash driver:
 *   ek_slot_erase:   sets [offset, offset + n) to the erased state (0xFF); offset
 *                    and n are multiples of EK_SLOT_ERASE_UNIT.
 *   ek_slot_program: writes n bytes at offset into erased storage; offset and n are
 *                    multiples of EK_SLOT_WRITE_UNIT.
 * Both return 0 on success, nonzero on a storage error. The application never
 * programs a byte twice without erasing it first.
 */
const uint8_t *ek_slot_base(uint32_t slot);
uint32_t ek_slot_bytes(void);
int ek_slot_erase(uint32_t slot, uint32_t offset, uint32_t n);
int ek_slot_program(uint32_t slot, uint32_t offset, const uint8_t *data, uint32_t n);

#endif /* EK_BOARD_H */
