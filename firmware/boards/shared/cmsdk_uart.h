/* Arm CMSDK APB UART (the MPS2/MPS3 FPGA images): polled transmit, interrupt-driven
 * receive into a ring buffer so no byte is lost while the CPU runs a model. */
#ifndef EK_CMSDK_UART_H
#define EK_CMSDK_UART_H

#include <stdint.h>

/* base: register block; irq: the NVIC line of its RX (or combined) interrupt;
 * bauddiv: clock / baud rate, at least 16. */
void ek_cmsdk_uart_init(uintptr_t base, uint32_t irq, uint32_t bauddiv);

/* The body of the board's RX interrupt handler. */
void ek_cmsdk_uart_isr(void);

#endif /* EK_CMSDK_UART_H */
