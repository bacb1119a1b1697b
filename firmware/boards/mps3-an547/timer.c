/* mps3-an547 timer: SysTick at the 32 MHz core clock, extended to 32 bits by
 * its wrap interrupt. */
#include "board.h"
#include "cortexm.h"
#include "ek_board.h"
#include "systick.h"

void ek_board_uart_init(void);

void ek_board_init(void) {
  ek_systick_init();
  ek_board_uart_init();
  ek_irq_enable();
}
