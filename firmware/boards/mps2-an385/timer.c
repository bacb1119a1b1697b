/* mps2-an385 timer: CMSDK TIMER0 at 0x40000000, 25 MHz; with
 * qemu-system-arm -icount shift=0 its ticks count guest instructions
 * (40 per tick) and repeat exactly between runs. */
#include "board.h"
#include "cmsdk_timer.h"
#include "cortexm.h"
#include "ek_board.h"

void ek_board_uart_init(void);

void ek_board_init(void) {
  ek_cmsdk_timer_init(EK_TIMER_BASE);
  ek_board_uart_init();
  ek_irq_enable();
}
