/*
 * On-target test runner for runtimes/micro (semihosting, see firmware/common).
 *
 * The generated vectors file (tests/runtimes/micro_cgen.py) provides the cases: each
 * runs one kernel into ek_test_out; this runner fills the buffer with a canary
 * first, then compares the bytes written with the expected ones and checks that
 * the guard bytes after them are untouched. It prints one line per failing case
 * and a summary, and exits with the number of failing cases (0: all equal).
 */
#include <stdint.h>

#include "ek_test.h"
#include "semihosting.h"

#define EK_TEST_CANARY 0x5Au
#define EK_TEST_GUARD 32u

void ek_main_returned(int status);
void ek_fault(void);

void ek_main_returned(int status) {
  ek_semihosting_exit(status);
}

void ek_fault(void) {
  ek_semihosting_write0("edgekit micro tests: FAULT (an exception was taken)\n");
  ek_semihosting_exit(126);
}

/* Decimal text of v into buf (at least 12 bytes); returns buf. */
static char *fmt_int(int32_t v, char *buf) {
  char tmp[12];
  uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
  int n = 0, i = 0;
  do {
    tmp[n++] = (char)('0' + u % 10u);
    u /= 10u;
  } while (u != 0u);
  if (v < 0) {
    buf[i++] = '-';
  }
  while (n > 0) {
    buf[i++] = tmp[--n];
  }
  buf[i] = '\0';
  return buf;
}

static void print3(const char *a, const char *b, const char *c) {
  ek_semihosting_write0(a);
  ek_semihosting_write0(b);
  ek_semihosting_write0(c);
}

/* Returns 1 when the case's output bytes and guard are as expected. */
static int check_case(const ek_test_case *tc) {
  uint32_t i, differ = 0, first = 0;
  char b1[12], b2[12], b3[12];
  for (i = 0; i < tc->nbytes; i++) {
    if (ek_test_out[i] != tc->expected[i]) {
      if (differ == 0) {
        first = i;
      }
      differ++;
    }
  }
  for (i = tc->nbytes; i < tc->nbytes + EK_TEST_GUARD; i++) {
    if (ek_test_out[i] != EK_TEST_CANARY) {
      print3("FAIL ", tc->name, ": wrote past the end of the output\n");
      return 0;
    }
  }
  if (differ == 0) {
    return 1;
  }
  print3("FAIL ", tc->name, ": ");
  print3(fmt_int((int32_t)differ, b1), " of ", fmt_int((int32_t)tc->nbytes, b2));
  print3(" bytes differ; first at byte ", fmt_int((int32_t)first, b3), ": got ");
  print3(fmt_int((int8_t)ek_test_out[first], b1), " expected ",
         fmt_int((int8_t)tc->expected[first], b2));
  ek_semihosting_write0("\n");
  return 0;
}

int main(void) {
  uint32_t c, i, failed = 0;
  char b1[12], b2[12];
  for (c = 0; c < ek_test_case_count; c++) {
    const ek_test_case *tc = &ek_test_cases[c];
    for (i = 0; i < tc->nbytes + EK_TEST_GUARD; i++) {
      ek_test_out[i] = EK_TEST_CANARY;
    }
    tc->run();
    failed += check_case(tc) ? 0u : 1u;
  }
  print3("edgekit micro tests: ", fmt_int((int32_t)(ek_test_case_count - failed), b1), " passed, ");
  print3(fmt_int((int32_t)failed, b2), " failed\n", "");
  return failed > 125u ? 125 : (int)failed;
}
