/* Test-only: the static inline helpers of runtimes/micro/src/fixedpoint.h as
 * exported functions over arrays, for the host tests (ctypes). */
#include <stdint.h>

#include "fixedpoint.h"

void ekt_srdhm(int32_t n, const int32_t *a, const int32_t *b, int32_t *out);
void ekt_rdbp(int32_t n, const int32_t *x, const int32_t *e, int32_t *out);
void ekt_mbqm(int32_t n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out);
void ekt_exp_on_negative_values(int32_t n, const int32_t *a, int32_t integer_bits, int32_t *out);
void ekt_logistic(int32_t n, const int32_t *a, int32_t integer_bits, int32_t *out);
void ekt_tanh(int32_t n, const int32_t *a, int32_t integer_bits, int32_t *out);
void ekt_one_over_one_plus_x(int32_t n, const int32_t *a, int32_t *out);
void ekt_get_reciprocal(int32_t n, const int32_t *x, int32_t digits, int32_t *out, int32_t *bits);

void ekt_srdhm(int32_t n, const int32_t *a, const int32_t *b, int32_t *out) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_srdhm(a[i], b[i]);
}

void ekt_rdbp(int32_t n, const int32_t *x, const int32_t *e, int32_t *out) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_rdbp(x[i], e[i]);
}

void ekt_mbqm(int32_t n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_mbqm(x[i], m[i], s[i]);
}

void ekt_exp_on_negative_values(int32_t n, const int32_t *a, int32_t integer_bits, int32_t *out) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_exp_on_negative_values(a[i], integer_bits);
}

void ekt_logistic(int32_t n, const int32_t *a, int32_t integer_bits, int32_t *out) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_logistic_q(a[i], integer_bits);
}

void ekt_tanh(int32_t n, const int32_t *a, int32_t integer_bits, int32_t *out) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_tanh_q(a[i], integer_bits);
}

void ekt_one_over_one_plus_x(int32_t n, const int32_t *a, int32_t *out) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_one_over_one_plus_x(a[i]);
}

void ekt_get_reciprocal(int32_t n, const int32_t *x, int32_t digits, int32_t *out, int32_t *bits) {
  int32_t i;
  for (i = 0; i < n; i++) out[i] = ek_get_reciprocal(x[i], digits, &bits[i]);
}
