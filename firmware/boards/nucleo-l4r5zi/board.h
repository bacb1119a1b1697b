/* NUCLEO-L4R5ZI: STM32L4R5ZI, Cortex-M4F (target nucleo-l4r5zi). Runs from the reset
 * clock (MSI 4 MHz); the serial link is LPUART1 on PG7/PG8, wired to the ST-LINK
 * virtual COM port, clocked from HSI16 at 115200 baud. */
#ifndef EK_BOARD_CONFIG_H
#define EK_BOARD_CONFIG_H

#define EK_BOARD_NAME "nucleo-l4r5zi"
#define EK_TARGET_NAME "nucleo-l4r5zi"

#define EK_CORE_HZ 4000000u  /* MSI after reset */
#define EK_TICK_HZ EK_CORE_HZ /* SysTick at the core clock */
#define EK_UART_BAUD 115200u
#define EK_UART_IRQ 70u /* LPUART1 */

/* Model slots: flash, 768 KiB each (see link.ld); 4 KiB pages (dual-bank mode),
 * programmed in 64-bit double words. */
#define EK_SLOT_COUNT 2
#define EK_SLOT_ERASE_UNIT 4096u
#define EK_SLOT_WRITE_UNIT 8u

#define EK_ARENA_BYTES (384u * 1024u)

/* Tensor buffer of chunked inputs and outputs (ek_tensor.h): an input and an
 * output that take more are refused at upload. */
#define EK_IO_BYTES (96u * 1024u)

/* External interrupts in the vector table (boards/shared/startup.c). */
#define EK_IRQ_COUNT 96u

#endif /* EK_BOARD_CONFIG_H */
