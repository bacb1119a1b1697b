/*
 * 4-D broadcasting walk shared by the elementwise binary kernels (internal header).
 *
 * ek_bcast4 visits the output's elements in order and gives, for each, the offsets
 * of the two operands. When both operands are dense (or one is a single value),
 * the walk is a flat loop.
 */
#ifndef EDGEKIT_BROADCAST4_H
#define EDGEKIT_BROADCAST4_H

#include "edgekit/kernels.h"

/* Step of an operand in a flat walk: 1 when dense in the output's order, 0 when a
 * single value, -1 when it needs the 4-D walk. */
static inline int32_t ek_flat_step(const ek_dims4 *d, const ek_strides4 *s) {
  if (s->n == 0 && s->h == 0 && s->w == 0 && s->c == 0) {
    return 0;
  }
  if ((s->c == 1 || d->c == 1) && (s->w == d->c || d->w == 1) &&
      (s->h == d->w * d->c || d->h == 1) && (s->n == d->h * d->w * d->c || d->n == 1)) {
    return 1;
  }
  return -1;
}

#endif /* EDGEKIT_BROADCAST4_H */
