/* Model slots in RAM (the QEMU boards, where every memory is RAM): the linker script
 * places them with __ek_slot_base and __ek_slot_bytes outside the loaded image, so a
 * warm reset (RESET, SYSRESETREQ) keeps them; erase sets 0xFF as flash would. */
#include <stdint.h>
#include <string.h>

#include "ek_board.h"

extern uint8_t __ek_slot_base[];
extern uint8_t __ek_slot_bytes[];

const uint8_t *ek_slot_base(uint32_t slot) {
  return __ek_slot_base + slot * ek_slot_bytes();
}

uint32_t ek_slot_bytes(void) {
  return (uint32_t)(uintptr_t)__ek_slot_bytes;
}

int ek_slot_erase(uint32_t slot, uint32_t offset, uint32_t n) {
  memset(__ek_slot_base + slot * ek_slot_bytes() + offset, 0xFF, n);
  return 0;
}

int ek_slot_program(uint32_t slot, uint32_t offset, const uint8_t *data, uint32_t n) {
  memcpy(__ek_slot_base + slot * ek_slot_bytes() + offset, data, n);
  return 0;
}
