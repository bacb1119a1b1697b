/* mps2-an500 UART: CMSDK UART0 at 0x40004000, receive interrupt on IRQ 0. */
#include "board.h"
#include "cmsdk_uart.h"

void ek_uart_irq_handler(void) {
  ek_cmsdk_uart_isr();
}

void ek_board_uart_init(void) {
  ek_cmsdk_uart_init(EK_UART_BASE, EK_UART_IRQ, EK_UART_BAUDDIV);
}
