/* SUB int8, portable reference (TFLM reference_ops::Sub / BroadcastQuantSubSlow). */
#include "edgekit/kernels.h"

#include "addsub.h"

void ek_sub_s8(const ek_add_params *params, const ek_dims4 *output_dims,
               const int8_t *in1, const ek_strides4 *in1_strides,
               const int8_t *in2, const ek_strides4 *in2_strides,
               int8_t *output) {
  ek_addsub_s8(params, output_dims, in1, in1_strides, in2, in2_strides, output, 1);
}
