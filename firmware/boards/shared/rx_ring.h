/* Single-producer (receive interrupt) / single-consumer (main loop) byte ring. */
#ifndef EK_RX_RING_H
#define EK_RX_RING_H

#include <stdint.h>

#ifndef EK_RX_RING_BYTES
#define EK_RX_RING_BYTES 8192u
#endif
#if (EK_RX_RING_BYTES & (EK_RX_RING_BYTES - 1u)) != 0
#error "EK_RX_RING_BYTES must be a power of two"
#endif

typedef struct {
  volatile uint32_t head; /* written by the interrupt */
  volatile uint32_t tail; /* written by the main loop */
  volatile uint32_t dropped;
  uint8_t data[EK_RX_RING_BYTES];
} ek_rx_ring;

static inline int ek_ring_empty(const ek_rx_ring *r) {
  return r->head == r->tail;
}

static inline void ek_ring_put(ek_rx_ring *r, uint8_t b) {
  const uint32_t h = r->head;
  if (h - r->tail >= EK_RX_RING_BYTES) {
    r->dropped++;
    return;
  }
  r->data[h & (EK_RX_RING_BYTES - 1u)] = b;
  __asm__ volatile("" ::: "memory");
  r->head = h + 1u;
}

static inline int ek_ring_get(ek_rx_ring *r) {
  const uint32_t t = r->tail;
  uint8_t b;
  if (r->head == t) {
    return -1;
  }
  b = r->data[t & (EK_RX_RING_BYTES - 1u)];
  __asm__ volatile("" ::: "memory");
  r->tail = t + 1u;
  return b;
}

#endif /* EK_RX_RING_H */
