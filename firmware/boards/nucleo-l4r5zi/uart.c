/* NUCLEO-L4R5ZI UART: LPUART1 (PG7 TX, PG8 RX, alternate function 8), the ST-LINK
 * virtual COM port. Polled transmit; receive interrupt into a ring buffer. */
#include "board.h"
#include "ek_board.h"
#include "rx_ring.h"
#include "stm32l4.h"

static ek_rx_ring ring;

void ek_board_uart_init(void) {
  uint32_t v;
  RCC_APB1ENR1 |= RCC_APB1ENR1_PWREN;
  PWR_CR2 |= PWR_CR2_IOSV;
  RCC_AHB2ENR |= RCC_AHB2ENR_GPIOGEN;
  RCC_CR |= RCC_CR_HSION;
  while (!(RCC_CR & RCC_CR_HSIRDY)) {
  }
  v = RCC_CCIPR & ~(3u << RCC_CCIPR_LPUART1SEL_SHIFT);
  RCC_CCIPR = v | (2u << RCC_CCIPR_LPUART1SEL_SHIFT);
  RCC_APB1ENR2 |= RCC_APB1ENR2_LPUART1EN;

  /* PG7, PG8: alternate function 8, high speed, RX pulled up. */
  v = GPIOG_MODER & ~((3u << 14) | (3u << 16));
  GPIOG_MODER = v | (2u << 14) | (2u << 16);
  GPIOG_OSPEEDR |= (3u << 14) | (3u << 16);
  v = GPIOG_PUPDR & ~(3u << 16);
  GPIOG_PUPDR = v | (1u << 16);
  GPIOG_AFRL = (GPIOG_AFRL & ~(0xFu << 28)) | (8u << 28);
  GPIOG_AFRH = (GPIOG_AFRH & ~0xFu) | 8u;

  LPUART1_CR1 = 0;
  /* LPUART: BRR = 256 * f_ck / baud (f_ck = HSI16). */
  LPUART1_BRR = (uint32_t)((256ull * 16000000ull + EK_UART_BAUD / 2u) / EK_UART_BAUD);
  LPUART1_CR1 = USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE | USART_CR1_UE;
  ek_nvic_enable(EK_UART_IRQ);
}

static void drain(void) {
  uint32_t isr = LPUART1_ISR;
  if (isr & USART_ISR_ORE) {
    LPUART1_ICR = USART_ICR_ORECF;
    ring.dropped++;
  }
  while (LPUART1_ISR & USART_ISR_RXNE) {
    ek_ring_put(&ring, (uint8_t)LPUART1_RDR);
  }
}

void ek_uart_irq_handler(void) {
  drain();
}

void ek_uart_write(const uint8_t *data, uint32_t n) {
  uint32_t i;
  for (i = 0; i < n; i++) {
    while (!(LPUART1_ISR & USART_ISR_TXE)) {
    }
    LPUART1_TDR = data[i];
  }
}

void ek_uart_flush(void) {
  while (!(LPUART1_ISR & USART_ISR_TC)) {
  }
}

int ek_uart_read(void) {
  int c = ek_ring_get(&ring);
  if (c < 0 && (LPUART1_ISR & USART_ISR_RXNE)) {
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
  if (ek_ring_empty(&ring) && !(LPUART1_ISR & USART_ISR_RXNE)) {
    ek_wfi();
  }
  ek_irq_enable();
}
