/*
 * Per-op profile of the last inference, in profiling builds only
 * (edgekit build-firmware --profile, which defines EDGEKIT_PROFILE). The model code
 * calls edgekit_profile_start() before its first op and edgekit_profile_mark() after
 * each op that runs code: the package executor (ek_package.c) and the generated C
 * model (model.c) mark the same ops, in the same order. PROFILE (0x25) reads the
 * ticks between consecutive marks (docs/serial-protocol.md). Normal builds call
 * nothing and keep their size and speed.
 */
#ifndef EK_PROFILE_H
#define EK_PROFILE_H

#include <stdint.h>

/* Ops one inference records; later ops of a larger model are run but not timed. */
#define EK_PROFILE_MAX_OPS 1024u

void edgekit_profile_start(void);
void edgekit_profile_mark(void);

/* Ops timed in the last inference, and the timer ticks of op i (i < that count). */
uint32_t ek_profile_ops(void);
uint32_t ek_profile_ticks(uint32_t op);

#endif /* EK_PROFILE_H */
