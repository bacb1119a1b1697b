/* Timer reads at op boundaries (ek_profile.h); empty unless EDGEKIT_PROFILE. */
#include "ek_profile.h"

#ifdef EDGEKIT_PROFILE
#include "ek_board.h"

/* marks[0]: the start; marks[i + 1]: the end of op i. One timer read per op boundary
 * and differences of consecutive reads, so the per-op ticks add up exactly to the
 * span from the start to the last mark. */
static uint32_t marks[EK_PROFILE_MAX_OPS + 1u];
static uint32_t marked;

void edgekit_profile_start(void) {
  __asm__ volatile("" ::: "memory");
  marks[0] = ek_ticks();
  marked = 0;
  __asm__ volatile("" ::: "memory");
}

void edgekit_profile_mark(void) {
  __asm__ volatile("" ::: "memory");
  if (marked < EK_PROFILE_MAX_OPS) {
    marks[++marked] = ek_ticks();
  }
  __asm__ volatile("" ::: "memory");
}

uint32_t ek_profile_ops(void) {
  return marked;
}

uint32_t ek_profile_ticks(uint32_t op) {
  return op < marked ? marks[op + 1u] - marks[op] : 0u;
}
#else
typedef int ek_profile_unused; /* ISO C wants a declaration in every file */
#endif
