/*
 * The C ABI of an edgekit model built as a Linux shared library
 * (libedgekit_model.so, see runtimes/linux/README.md).
 *
 *   const ek_model_info *ek_model_info_get(void);
 *   int ek_model_run(const void *in, uint32_t in_bytes, void *out, uint32_t out_bytes);
 *
 * ek_model_run runs one inference: `in` holds the input tensor (row-major, NHWC for
 * images, int8 or float32 as info->input.dtype says), `out` receives the output
 * tensor (int8, float32 or int32 as info->output.dtype says). It returns EK_OK, or
 * EK_ERR_SIZE (nothing written) when a byte count is not the model's. Calls from
 * several threads are serialized: the model has one arena.
 */
#ifndef EDGEKIT_MODEL_ABI_H
#define EDGEKIT_MODEL_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EK_MODEL_ABI_VERSION 1u
#define EK_MODEL_MAX_RANK 8

#define EK_DTYPE_INT8 1u
#define EK_DTYPE_FLOAT32 2u
#define EK_DTYPE_INT32 3u   /* e.g. the indices ARG_MAX / ARG_MIN output */

#define EK_OK 0
#define EK_ERR_SIZE (-1)

typedef struct {
  uint32_t dtype;      /* EK_DTYPE_INT8, EK_DTYPE_FLOAT32 or EK_DTYPE_INT32 */
  uint32_t rank;
  int32_t shape[EK_MODEL_MAX_RANK];
  uint32_t bytes;
  uint32_t quantized;  /* 1: scale and zero_point hold the tensor's int8 parameters */
  float scale;
  int32_t zero_point;
} ek_tensor_info;

typedef struct {
  uint32_t abi_version;  /* EK_MODEL_ABI_VERSION */
  const char *name;
  uint32_t arena_bytes;
  ek_tensor_info input;
  ek_tensor_info output;
} ek_model_info;

const ek_model_info *ek_model_info_get(void);
int ek_model_run(const void *in, uint32_t in_bytes, void *out, uint32_t out_bytes);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_MODEL_ABI_H */
