/* The interface between runner.c and a generated vectors file (micro_cgen.py). */
#ifndef EDGEKIT_EK_TEST_H
#define EDGEKIT_EK_TEST_H

#include <stdint.h>

typedef struct {
  const char *name;          /* "conv2d[3]" */
  void (*run)(void);         /* calls the kernel, writing to ek_test_out */
  const uint8_t *expected;   /* the bytes it must write */
  uint32_t nbytes;
} ek_test_case;

extern const ek_test_case ek_test_cases[];
extern const uint32_t ek_test_case_count;
extern uint8_t ek_test_out[]; /* the largest output plus the guard bytes */

#endif /* EDGEKIT_EK_TEST_H */
