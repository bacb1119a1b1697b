/*
 * The exported C ABI (edgekit_model_abi.h) over a generated model (model.h /
 * model.c of edgekit's C backend). Everything else in the shared library is built
 * with -fvisibility=hidden, so these two functions are its only symbols.
 */
#include <pthread.h>

#include "edgekit_model_abi.h"
#include "model.h"

#define EK_EXPORT __attribute__((visibility("default")))

/* int8_t, int32_t or float: the size tells int8_t apart, and 0.5 converted to the type
 * is nonzero only for float (a constant expression, evaluated by the compiler). */
#define EK_DTYPE_OF(type) \
  (sizeof(type) == 1u ? EK_DTYPE_INT8 : ((type)0.5f != (type)0 ? EK_DTYPE_FLOAT32 : EK_DTYPE_INT32))

#ifdef EDGEKIT_MODEL_INPUT_SCALE
#define EK_INPUT_QUANT 1u, EDGEKIT_MODEL_INPUT_SCALE, EDGEKIT_MODEL_INPUT_ZERO_POINT
#else
#define EK_INPUT_QUANT 0u, 0.0f, 0
#endif
#ifdef EDGEKIT_MODEL_OUTPUT_SCALE
#define EK_OUTPUT_QUANT 1u, EDGEKIT_MODEL_OUTPUT_SCALE, EDGEKIT_MODEL_OUTPUT_ZERO_POINT
#else
#define EK_OUTPUT_QUANT 0u, 0.0f, 0
#endif

/* A negative array size stops the build of a model whose tensors have too many dims. */
typedef char ek_rank_fits[(EDGEKIT_MODEL_INPUT_RANK <= EK_MODEL_MAX_RANK &&
                           EDGEKIT_MODEL_OUTPUT_RANK <= EK_MODEL_MAX_RANK) ? 1 : -1];

static const ek_model_info info = {
    EK_MODEL_ABI_VERSION,
    EDGEKIT_MODEL_NAME,
    EDGEKIT_MODEL_ARENA_BYTES,
    {EK_DTYPE_OF(edgekit_input_t), EDGEKIT_MODEL_INPUT_RANK, EDGEKIT_MODEL_INPUT_SHAPE,
     EDGEKIT_MODEL_INPUT_BYTES, EK_INPUT_QUANT},
    {EK_DTYPE_OF(edgekit_output_t), EDGEKIT_MODEL_OUTPUT_RANK, EDGEKIT_MODEL_OUTPUT_SHAPE,
     EDGEKIT_MODEL_OUTPUT_BYTES, EK_OUTPUT_QUANT},
};

/* The generated model keeps its activations in one static arena. */
static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;

EK_EXPORT const ek_model_info *ek_model_info_get(void) {
  return &info;
}

EK_EXPORT int ek_model_run(const void *in, uint32_t in_bytes, void *out, uint32_t out_bytes) {
  int rc;
  if (in_bytes != EDGEKIT_MODEL_INPUT_BYTES || out_bytes != EDGEKIT_MODEL_OUTPUT_BYTES) {
    return EK_ERR_SIZE;
  }
  pthread_mutex_lock(&arena_lock);
  rc = edgekit_model_invoke((const edgekit_input_t *)in, (edgekit_output_t *)out);
  pthread_mutex_unlock(&arena_lock);
  return rc;
}
