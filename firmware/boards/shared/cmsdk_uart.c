#include "cmsdk_uart.h"

#include "cortexm.h"
#include "ek_board.h"
#include "rx_ring.h"

/* Registers. */
#define DATA 0x00u
#define STATE 0x04u
#define CTRL 0x08u
#define INTSTATUS 0x0Cu /* write 1 to clear */
#define BAUDDIV 0x10u

#define STATE_TXFULL (1u << 0)
#define STATE_RXFULL (1u << 1)
#define STATE_RXOVERRUN (1u << 3)
#define CTRL_TXEN (1u << 0)
#define CTRL_RXEN (1u << 1) /* without it nothing is received */
#define CTRL_RXINTEN (1u << 3)
#define INT_RX (1u << 1)

static uintptr_t uart;
static ek_rx_ring ring;

#define UART(off) EK_REG(uart + (off))

void ek_cmsdk_uart_init(uintptr_t base, uint32_t irq, uint32_t bauddiv) {
  uart = base;
  UART(CTRL) = 0;
  UART(BAUDDIV) = bauddiv < 16u ? 16u : bauddiv;
  UART(INTSTATUS) = 0xFu;
  UART(STATE) = STATE_RXOVERRUN;
  UART(CTRL) = CTRL_TXEN | CTRL_RXEN | CTRL_RXINTEN;
  ek_nvic_enable(irq);
}

/* Moves every byte the UART holds into the ring. Clearing the interrupt before
 * draining means a byte arriving meanwhile raises it again instead of being stuck. */
static void drain(void) {
  UART(INTSTATUS) = INT_RX;
  if (UART(STATE) & STATE_RXOVERRUN) {
    UART(STATE) = STATE_RXOVERRUN;
    ring.dropped++;
  }
  while (UART(STATE) & STATE_RXFULL) {
    ek_ring_put(&ring, (uint8_t)UART(DATA));
  }
}

void ek_cmsdk_uart_isr(void) {
  drain();
}

void ek_uart_write(const uint8_t *data, uint32_t n) {
  uint32_t i;
  for (i = 0; i < n; i++) {
    while (UART(STATE) & STATE_TXFULL) {
    }
    UART(DATA) = data[i];
  }
}

void ek_uart_flush(void) {
  volatile uint32_t spin;
  while (UART(STATE) & STATE_TXFULL) {
  }
  for (spin = 0; spin < 2000u; spin++) { /* the shift register's last byte */
  }
}

int ek_uart_read(void) {
  int c = ek_ring_get(&ring);
  if (c < 0 && (UART(STATE) & STATE_RXFULL)) {
    /* A byte the interrupt has not taken yet. */
    ek_irq_disable();
    drain();
    ek_irq_enable();
    c = ek_ring_get(&ring);
  }
  return c;
}

uint32_t ek_uart_dropped(void) {
  return ring.dropped;
}

void ek_board_idle(void) {
  ek_irq_disable();
  if (ek_ring_empty(&ring) && !(UART(STATE) & STATE_RXFULL)) {
    ek_wfi(); /* wakes on the pending interrupt, taken after cpsie */
  }
  ek_irq_enable();
}
