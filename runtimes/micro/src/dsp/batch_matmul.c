/* BATCH_MATMUL int8, Armv7E-M DSP variant (same bytes as portable/batch_matmul.c).
 *
 * sum_k (a + oa)(b + ob) = sum_k a (b + ob) + oa * sum_k (b + ob): each output column's
 * operand b + ob is read as SXTB16 pairs offset with SADD16 and multiplied against two
 * lhs rows at a time with SMLAD (ek_dot2_s8); oa times the column's sum is added once
 * per column. The lhs rows must be contiguous along depth (adj_x = 0). The column is
 * contiguous when adj_y = 1 (Q K^T); otherwise it is gathered into a stack buffer
 * first (depth <= EK_BMM_COLUMN). Other shapes take the portable loop. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "simd.h"

#define EK_BMM_COLUMN 256

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

static void matrix_simd(const ek_batch_matmul_params *p, const int8_t *a, const int8_t *b,
                        int32_t rows, int32_t cols, int32_t depth, int8_t *out) {
  int8_t column[EK_BMM_COLUMN];
  const int16x2_t rhs_off2 = ek_dup16(p->rhs_offset);
  int32_t i, j, k;
  for (j = 0; j < cols; j++) {
    const int8_t *col = b + j * depth;
    int32_t col_sum = 0; /* sum_k (b + ob) */
    if (!p->adj_y) {
      for (k = 0; k < depth; k++) {
        column[k] = b[k * cols + j];
      }
      col = column;
    }
    for (k = 0; k < depth; k++) {
      col_sum += col[k] + p->rhs_offset;
    }
    col_sum = (int32_t)((uint32_t)col_sum * (uint32_t)p->lhs_offset);
    for (i = 0; i + 2 <= rows; i += 2) {
      int32_t acc0 = col_sum, acc1 = col_sum;
      ek_dot2_s8(col, a + i * depth, a + (i + 1) * depth, depth, p->rhs_offset, rhs_off2, &acc0, &acc1);
      out[i * cols + j] = requant(p, acc0);
      out[(i + 1) * cols + j] = requant(p, acc1);
    }
    if (i < rows) {
      int32_t acc0 = col_sum, acc1 = col_sum;
      ek_dot2_s8(col, a + i * depth, a + i * depth, depth, p->rhs_offset, rhs_off2, &acc0, &acc1);
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
