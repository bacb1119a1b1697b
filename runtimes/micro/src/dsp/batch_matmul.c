/* BATCH_MATMUL int8, Armv7E-M DSP variant (same bytes as portable/batch_matmul.c).
 *
 * sum_k (a + oa)(b + ob) = sum_k a (b + ob) + oa * sum_k (b + ob): the columns' operands
 * b + ob are read as SXTB16 pairs offset with SADD16 and multiplied against the lhs rows
 * with SMLAD, two rows by two columns at a time (each loaded word used twice); oa times
 * a column's sum is added once per column. The lhs rows must be contiguous along depth
 * (adj_x = 0). A column is contiguous when adj_y = 1 (Q K^T); otherwise it is gathered
 * into a stack buffer first (depth <= EK_BMM_COLUMN: two buffers, 256 bytes). Other
 * shapes take the portable loop. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "simd.h"

#define EK_BMM_COLUMN 128

static int8_t requant(const ek_batch_matmul_params *p, int32_t acc) {
  return (int8_t)ek_clamp(ek_mbqm(acc, p->multiplier, p->shift) + p->output_offset, -128, 127);
}

static void matrix_generic(const ek_batch_matmul_params *p, const int8_t *a, const int8_t *b,
                           int32_t rows, int32_t cols, int32_t depth, int8_t *out) {
  const int32_t a_row = p->adj_x ? 1 : depth, a_k = p->adj_x ? rows : 1;
  const int32_t b_k = p->adj_y ? 1 : cols, b_col = p->adj_y ? depth : 1;
  int32_t i, j, k;
  for (i = 0; i < rows; i++) {
    for (j = 0; j < cols; j++) {
      uint32_t acc = 0;
      for (k = 0; k < depth; k++) {
        acc += (uint32_t)((a[i * a_row + k * a_k] + p->lhs_offset) *
                          (b[j * b_col + k * b_k] + p->rhs_offset));
      }
      out[i * cols + j] = requant(p, (int32_t)acc);
    }
  }
}

/* acc[r][c] += sum_k a_r[k] * (b_c[k] + off) for two lhs rows and two columns: the four
 * products of each loaded pair of words (one row word and one column word per operand). */
static void dot2x2(const int8_t *b0, const int8_t *b1, const int8_t *a0, const int8_t *a1, int32_t len,
                   int32_t off, int16x2_t off2, int32_t acc[4]) {
  int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3];
  int32_t k = 0;
  for (; k + 4 <= len; k += 4) {
    const uint32_t c0 = ek_load4(b0 + k), c1 = ek_load4(b1 + k);
    const uint32_t r0 = ek_load4(a0 + k), r1 = ek_load4(a1 + k);
    const int16x2_t c0e = __sadd16(ek_even(c0), off2), c0o = __sadd16(ek_odd(c0), off2);
    const int16x2_t c1e = __sadd16(ek_even(c1), off2), c1o = __sadd16(ek_odd(c1), off2);
    const int16x2_t r0e = ek_even(r0), r0o = ek_odd(r0), r1e = ek_even(r1), r1o = ek_odd(r1);
    s00 = __smlad(r0e, c0e, s00);
    s00 = __smlad(r0o, c0o, s00);
    s01 = __smlad(r0e, c1e, s01);
    s01 = __smlad(r0o, c1o, s01);
    s10 = __smlad(r1e, c0e, s10);
    s10 = __smlad(r1o, c0o, s10);
    s11 = __smlad(r1e, c1e, s11);
    s11 = __smlad(r1o, c1o, s11);
  }
  for (; k < len; k++) {
    const int32_t v0 = (int32_t)b0[k] + off, v1 = (int32_t)b1[k] + off;
    s00 += (int32_t)a0[k] * v0;
    s01 += (int32_t)a0[k] * v1;
    s10 += (int32_t)a1[k] * v0;
    s11 += (int32_t)a1[k] * v1;
  }
  acc[0] = s00;
  acc[1] = s01;
  acc[2] = s10;
  acc[3] = s11;
}

/* Column j of b (depth values): itself when adj_y, else gathered into buf. */
static const int8_t *column(const ek_batch_matmul_params *p, const int8_t *b, int32_t j, int32_t cols,
                            int32_t depth, int8_t *buf) {
  int32_t k;
  if (p->adj_y) {
    return b + j * depth;
  }
  for (k = 0; k < depth; k++) {
    buf[k] = b[k * cols + j];
  }
  return buf;
}

/* oa * sum_k (b[k] + ob): the lhs offset's share of every output of a column. */
static int32_t column_term(const ek_batch_matmul_params *p, const int8_t *col, int32_t depth) {
  int32_t sum = 0, k;
  for (k = 0; k < depth; k++) {
    sum += col[k] + p->rhs_offset;
  }
  return (int32_t)((uint32_t)sum * (uint32_t)p->lhs_offset);
}

static void matrix_simd(const ek_batch_matmul_params *p, const int8_t *a, const int8_t *b,
                        int32_t rows, int32_t cols, int32_t depth, int8_t *out) {
  int8_t buf0[EK_BMM_COLUMN], buf1[EK_BMM_COLUMN];
  const int16x2_t rhs_off2 = ek_dup16(p->rhs_offset);
  int32_t i, j;
  for (j = 0; j + 2 <= cols; j += 2) {
    const int8_t *c0 = column(p, b, j, cols, depth, buf0);
    const int8_t *c1 = column(p, b, j + 1, cols, depth, buf1);
    const int32_t t0 = column_term(p, c0, depth), t1 = column_term(p, c1, depth);
    for (i = 0; i + 2 <= rows; i += 2) {
      int32_t acc[4];
      acc[0] = t0;
      acc[1] = t1;
      acc[2] = t0;
      acc[3] = t1;
      dot2x2(c0, c1, a + i * depth, a + (i + 1) * depth, depth, p->rhs_offset, rhs_off2, acc);
      out[i * cols + j] = requant(p, acc[0]);
      out[i * cols + j + 1] = requant(p, acc[1]);
      out[(i + 1) * cols + j] = requant(p, acc[2]);
      out[(i + 1) * cols + j + 1] = requant(p, acc[3]);
    }
    if (i < rows) {
      int32_t acc0 = t0, acc1 = t1;
      const int8_t *ai = a + i * depth;
      ek_dot2_s8(ai, c0, c1, depth, 0, ek_dup16(0), &acc0, &acc1);
      /* ek_dot2_s8 gives sum c * a; the rhs offset's share is ob * sum a */
      {
        int32_t k, row_sum = 0;
        for (k = 0; k < depth; k++) {
          row_sum += ai[k];
        }
        acc0 = (int32_t)((uint32_t)acc0 + (uint32_t)row_sum * (uint32_t)p->rhs_offset);
        acc1 = (int32_t)((uint32_t)acc1 + (uint32_t)row_sum * (uint32_t)p->rhs_offset);
      }
      out[i * cols + j] = requant(p, acc0);
      out[i * cols + j + 1] = requant(p, acc1);
    }
  }
  if (j < cols) {
    const int8_t *c0 = column(p, b, j, cols, depth, buf0);
    const int32_t t0 = column_term(p, c0, depth);
    for (i = 0; i + 2 <= rows; i += 2) {
      int32_t acc0 = t0, acc1 = t0;
      ek_dot2_s8(c0, a + i * depth, a + (i + 1) * depth, depth, p->rhs_offset, rhs_off2, &acc0, &acc1);
      out[i * cols + j] = requant(p, acc0);
      out[(i + 1) * cols + j] = requant(p, acc1);
    }
    if (i < rows) {
      int32_t acc0 = t0, acc1 = t0;
      ek_dot2_s8(c0, a + i * depth, a + i * depth, depth, p->rhs_offset, rhs_off2, &acc0, &acc1);
      out[i * cols + j] = requant(p, acc0);
    }
  }
}

void ek_batch_matmul_s8(const ek_batch_matmul_params *p, const ek_dims4 *lhs_dims,
                        const int8_t *lhs, const ek_dims4 *rhs_dims, const int8_t *rhs,
                        const ek_dims4 *output_dims, int8_t *output) {
  const int32_t rows = output_dims->w, cols = output_dims->c;
  const int32_t depth = p->adj_x ? lhs_dims->w : lhs_dims->c;
  const int32_t lhs_mat = lhs_dims->w * lhs_dims->c, rhs_mat = rhs_dims->w * rhs_dims->c;
  const int32_t lhs_n = lhs_dims->n == 1 ? 0 : lhs_dims->h * lhs_mat;
  const int32_t lhs_h = lhs_dims->h == 1 ? 0 : lhs_mat;
  const int32_t rhs_n = rhs_dims->n == 1 ? 0 : rhs_dims->h * rhs_mat;
  const int32_t rhs_h = rhs_dims->h == 1 ? 0 : rhs_mat;
  const int simd = !p->adj_x && (p->adj_y || depth <= EK_BMM_COLUMN);
  int32_t b0, b1;
  for (b0 = 0; b0 < output_dims->n; b0++) {
    for (b1 = 0; b1 < output_dims->h; b1++) {
      const int8_t *a = lhs + b0 * lhs_n + b1 * lhs_h;
      const int8_t *b = rhs + b0 * rhs_n + b1 * rhs_h;
      if (simd) {
        matrix_simd(p, a, b, rows, cols, depth, output);
      } else {
        matrix_generic(p, a, b, rows, cols, depth, output);
      }
      output += rows * cols;
    }
  }
}
