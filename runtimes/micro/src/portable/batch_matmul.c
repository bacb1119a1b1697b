/* BATCH_MATMUL int8, portable reference (TFLM batch_matmul.cc, reference_ops::BatchMatMul
 * int8): acc = sum (lhs + lhs_offset) * (rhs + rhs_offset) in int32, requantized with
 * MBQM, + output_offset, clamped to int8. adj_x / adj_y read an operand with its last
 * two dimensions swapped (no transposed copy); batch dimensions of size 1 broadcast. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_batch_matmul_s8(const ek_batch_matmul_params *p, const ek_dims4 *lhs_dims,
                        const int8_t *lhs, const ek_dims4 *rhs_dims, const int8_t *rhs,
                        const ek_dims4 *output_dims, int8_t *output) {
  const int32_t rows = output_dims->w, cols = output_dims->c;
  const int32_t depth = p->adj_x ? lhs_dims->w : lhs_dims->c;
  /* element strides of (row i, depth k) in lhs and (depth k, column j) in rhs */
  const int32_t lhs_row = p->adj_x ? 1 : depth, lhs_k = p->adj_x ? rows : 1;
  const int32_t rhs_k = p->adj_y ? 1 : cols, rhs_col = p->adj_y ? depth : 1;
  const int32_t lhs_mat = lhs_dims->w * lhs_dims->c, rhs_mat = rhs_dims->w * rhs_dims->c;
  const int32_t lhs_n = lhs_dims->n == 1 ? 0 : lhs_dims->h * lhs_mat;
  const int32_t lhs_h = lhs_dims->h == 1 ? 0 : lhs_mat;
  const int32_t rhs_n = rhs_dims->n == 1 ? 0 : rhs_dims->h * rhs_mat;
  const int32_t rhs_h = rhs_dims->h == 1 ? 0 : rhs_mat;
  int32_t b0, b1, i, j, k;
  for (b0 = 0; b0 < output_dims->n; b0++) {
    for (b1 = 0; b1 < output_dims->h; b1++) {
      const int8_t *a = lhs + b0 * lhs_n + b1 * lhs_h;
      const int8_t *b = rhs + b0 * rhs_n + b1 * rhs_h;
      for (i = 0; i < rows; i++) {
        for (j = 0; j < cols; j++) {
          const int8_t *ai = a + i * lhs_row;
          const int8_t *bj = b + j * rhs_col;
          uint32_t acc = 0; /* wraps as TFLM's int32 accumulator does in practice */
          int32_t v;
          for (k = 0; k < depth; k++) {
            acc += (uint32_t)((ai[k * lhs_k] + p->lhs_offset) * (bj[k * rhs_k] + p->rhs_offset));
          }
          v = ek_mbqm((int32_t)acc, p->multiplier, p->shift) + p->output_offset;
          *output++ = (int8_t)ek_clamp(v, -128, 127);
        }
      }
    }
  }
}
