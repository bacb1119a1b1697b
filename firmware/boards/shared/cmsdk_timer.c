/* CMSDK APB timer: a 32-bit down-counter at the APB clock, reloaded from RELOAD at 0.
 * With RELOAD = 0xFFFFFFFF, ~VALUE counts up and wraps at 2^32, no interrupt needed. */
#include "cmsdk_timer.h"

#include "cortexm.h"
#include "ek_board.h"

#define CTRL 0x00u
#define VALUE 0x04u
#define RELOAD 0x08u
#define INTCLEAR 0x0Cu

static uintptr_t timer;

void ek_cmsdk_timer_init(uintptr_t base) {
  timer = base;
  EK_REG(timer + CTRL) = 0;
  EK_REG(timer + RELOAD) = 0xFFFFFFFFu;
  EK_REG(timer + VALUE) = 0xFFFFFFFFu;
  EK_REG(timer + INTCLEAR) = 1u;
  EK_REG(timer + CTRL) = 1u; /* enable, no interrupt */
}

uint32_t ek_ticks(void) {
  return ~EK_REG(timer + VALUE);
}
