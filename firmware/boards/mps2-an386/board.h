/* mps2-an386: Cortex-M4F on the QEMU machine mps2-an386 (target cortex-m4). */
#ifndef EK_BOARD_CONFIG_H
#define EK_BOARD_CONFIG_H

#define EK_BOARD_NAME "mps2-an386"
#define EK_TARGET_NAME "cortex-m4"

/* CMSDK UART0 and the NVIC line of its UART0 RX interrupt. */
#define EK_UART_BASE 0x40004000u
#define EK_UART_IRQ 0u
#define EK_UART_BAUDDIV 217u /* APB clock / 115200 */

/* Timer: CMSDK TIMER0, a 32-bit down-counter at the APB clock. */
#define EK_TIMER_BASE 0x40000000u
#define EK_TICK_HZ 25000000u

/* Model slots: RAM (see link.ld); erase/program units as a flash would have. */
#define EK_SLOT_COUNT 2
#define EK_SLOT_ERASE_UNIT 4096u
#define EK_SLOT_WRITE_UNIT 1u

/* Activation arena of the package executor (in .bss, RAM). */
#define EK_ARENA_BYTES (1024 * 1024u)

/* Tensor buffer of chunked inputs and outputs (ek_tensor.h): an input and an
 * output that take more are refused at upload. */
#define EK_IO_BYTES (256u * 1024u)

/* External interrupts in the vector table (boards/shared/startup.c). */
#define EK_IRQ_COUNT 32u

#endif /* EK_BOARD_CONFIG_H */
