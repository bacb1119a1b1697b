/* SysTick as a 32-bit tick counter: the 24-bit down-counter runs from the core
 * clock with reload 0xFFFFFF, and its interrupt counts the wraps. Boards that time
 * with SysTick call ek_systick_init() and get ek_ticks() and SysTick_Handler. */
#include "cortexm.h"
#include "ek_board.h"

#define RELOAD 0x00FFFFFFu

static volatile uint32_t wraps;

void ek_systick_init(void) {
  EK_SYST_CSR = 0;
  EK_SYST_RVR = RELOAD;
  EK_SYST_CVR = 0;
  EK_SYST_CSR = 0x7u; /* processor clock, interrupt, enable */
}

void SysTick_Handler(void) {
  wraps++;
}

uint32_t ek_ticks(void) {
  uint32_t w, v, pending;
  do {
    w = wraps;
    v = EK_SYST_CVR;
    pending = EK_SCB_ICSR & EK_ICSR_PENDSTSET;
  } while (w != wraps);
  /* A wrap whose interrupt has not run yet: the counter restarted near RELOAD. */
  if (pending && v > RELOAD / 2u) {
    w++;
  }
  return (w << 24) + (RELOAD - v);
}
