/* A stand-in firmware for the QemuBoard tests (mps2-an385/386/500): prints an edgekit
 * boot banner on CMSDK UART0, then echoes every byte it receives. */
#include <stdint.h>

#define UART0 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0 + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0 + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0 + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0 + 0x10u))

static void put(uint8_t c) {
  while (UART_STATE & 1u) {
  }
  UART_DATA = c;
}

int main(void) {
  static const char banner[] = "edgekit-fw 0.0.1 proto 1 target cortex-m4 board echo\n";
  const char *p;
  UART_BAUDDIV = 16u;
  UART_CTRL = 3u; /* TX and RX enabled */
  for (p = banner; *p != '\0'; p++) {
    put((uint8_t)*p);
  }
  put(0u);
  for (;;) {
    if (UART_STATE & 2u) {
      put((uint8_t)UART_DATA);
    }
  }
}
