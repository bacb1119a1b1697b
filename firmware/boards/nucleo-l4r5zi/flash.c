/*
 * NUCLEO-L4R5ZI slot storage: the two model slots are flash (link.ld), and these are
 * the erase/program hooks of ek_board.h for the STM32L4R5 flash interface (RM0432,
 * "Flash program and erase operations"): dual-bank mode, 4 KiB pages, 64-bit double
 * word programming. Compiled and linked here; not yet run on a board.
 */
#include <stdint.h>

#include "board.h"
#include "ek_board.h"
#include "stm32l4.h"

extern uint8_t __ek_slot_base[];
extern uint8_t __ek_slot_bytes[];

#define FLASH_START 0x08000000u
#define BANK_BYTES 0x00100000u

const uint8_t *ek_slot_base(uint32_t slot) {
  return __ek_slot_base + slot * ek_slot_bytes();
}

uint32_t ek_slot_bytes(void) {
  return (uint32_t)(uintptr_t)__ek_slot_bytes;
}

static void unlock(void) {
  if (FLASH_CR & FLASH_CR_LOCK) {
    FLASH_KEYR = 0x45670123u;
    FLASH_KEYR = 0xCDEF89ABu;
  }
}

static int wait_done(void) {
  uint32_t sr;
  while ((sr = FLASH_SR) & FLASH_SR_BSY) {
  }
  FLASH_SR = sr & (FLASH_SR_ERRORS | FLASH_SR_EOP);
  return (sr & FLASH_SR_ERRORS) ? -1 : 0;
}

/* After an erase or a program the ART caches may hold the old bytes. */
static void flush_caches(void) {
  const uint32_t acr = FLASH_ACR;
  FLASH_ACR = acr & ~(FLASH_ACR_ICEN | FLASH_ACR_DCEN);
  FLASH_ACR = (acr & ~(FLASH_ACR_ICEN | FLASH_ACR_DCEN)) | FLASH_ACR_ICRST | FLASH_ACR_DCRST;
  FLASH_ACR = acr & ~(FLASH_ACR_ICRST | FLASH_ACR_DCRST);
}

int ek_slot_erase(uint32_t slot, uint32_t offset, uint32_t n) {
  uint32_t addr = (uint32_t)(uintptr_t)ek_slot_base(slot) + offset;
  const uint32_t end = addr + n;
  int rc = 0;
  unlock();
  FLASH_SR = FLASH_SR_ERRORS | FLASH_SR_EOP;
  for (; addr < end && rc == 0; addr += EK_SLOT_ERASE_UNIT) {
    const uint32_t rel = addr - FLASH_START;
    const uint32_t bank2 = rel >= BANK_BYTES;
    const uint32_t page = (rel % BANK_BYTES) / EK_SLOT_ERASE_UNIT;
    (void)wait_done();
    FLASH_CR = FLASH_CR_PER | (page << FLASH_CR_PNB_SHIFT) | (bank2 ? FLASH_CR_BKER : 0u);
    FLASH_CR |= FLASH_CR_STRT;
    rc = wait_done();
  }
  FLASH_CR = FLASH_CR_LOCK;
  flush_caches();
  return rc;
}

int ek_slot_program(uint32_t slot, uint32_t offset, const uint8_t *data, uint32_t n) {
  volatile uint32_t *dst = (volatile uint32_t *)(uintptr_t)(ek_slot_base(slot) + offset);
  uint32_t i;
  int rc = 0;
  unlock();
  FLASH_SR = FLASH_SR_ERRORS | FLASH_SR_EOP;
  FLASH_CR = FLASH_CR_PG;
  for (i = 0; i < n && rc == 0; i += 8u) {
    const uint32_t lo = (uint32_t)data[i] | ((uint32_t)data[i + 1] << 8) |
                        ((uint32_t)data[i + 2] << 16) | ((uint32_t)data[i + 3] << 24);
    const uint32_t hi = (uint32_t)data[i + 4] | ((uint32_t)data[i + 5] << 8) |
                        ((uint32_t)data[i + 6] << 16) | ((uint32_t)data[i + 7] << 24);
    dst[0] = lo; /* the two words of one double word, in order */
    dst[1] = hi;
    dst += 2;
    rc = wait_done();
  }
  FLASH_CR = FLASH_CR_LOCK;
  flush_caches();
  return rc;
}
