/* NUCLEO-L4R5ZI timer: SysTick at the core clock (MSI 4 MHz after reset), extended to
 * 32 bits by its wrap interrupt (firmware/boards/shared/systick.c). */
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
