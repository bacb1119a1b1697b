/* mps2-an505 UART: CMSDK UART0 at 0x40200000, receive interrupt on IRQ 42. */
#include "board.h"
#include "cmsdk_uart.h"

void ek_uart_irq_handler(void) {
  ek_cmsdk_uart_isr();
}

void ek_board_uart_init(void) {
  ek_cmsdk_uart_init(EK_UART_BASE, EK_UART_IRQ, EK_UART_BAUDDIV);
}
