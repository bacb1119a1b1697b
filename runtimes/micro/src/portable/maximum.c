/* MAXIMUM int8, TFLM MaximumMinimumBroadcast: a raw compare (inputs and output share
 * their quantization). */
#include "edgekit/kernels.h"

#include "elementwise_binary.h"

void ek_maximum_s8(const ek_dims4 *output_dims, const int8_t *in1, const ek_strides4 *in1_strides,
                   const int8_t *in2, const ek_strides4 *in2_strides, int8_t *output) {
  EK_BINARY_WALK(output_dims, in1, in1_strides, in2, in2_strides, output, a > b ? a : b);
}
