/* mps3-an547: Cortex-M55 on the QEMU machine mps3-an547 (target cortex-m55). */
#ifndef EK_BOARD_CONFIG_H
#define EK_BOARD_CONFIG_H

#define EK_BOARD_NAME "mps3-an547"
#define EK_TARGET_NAME "cortex-m55"

/* CMSDK UART0 and the NVIC line of its UART0 combined interrupt. */
#define EK_UART_BASE 0x49303000u
#define EK_UART_IRQ 43u
#define EK_UART_BAUDDIV 217u /* APB clock / 115200 */

/* Timer: SysTick at the core clock (the SSE-300 has no CMSDK TIMER0 at 25 MHz). */
#define EK_TICK_HZ 32000000u

/* Model slots: RAM (see link.ld); erase/program units as a flash would have. */
#define EK_SLOT_COUNT 2
#define EK_SLOT_ERASE_UNIT 4096u
#define EK_SLOT_WRITE_UNIT 1u

/* Activation arena of the package executor (in .bss, RAM). */
#define EK_ARENA_BYTES (256 * 1024u)

/* Tensor buffer of chunked inputs and outputs (ek_tensor.h): an input and an
 * output that take more are refused at upload. */
#define EK_IO_BYTES (96u * 1024u)

/* External interrupts in the vector table (boards/shared/startup.c). */
#define EK_IRQ_COUNT 128u

#endif /* EK_BOARD_CONFIG_H */
