/*
 * The model of the linked firmware variant: C code from edgekit's code generator
 * (edgekit/backends/c), compiled into the image. The generated model.c provides
 *   int edgekit_model_invoke(const int8_t *input, int8_t *output);   (0: success)
 * with its own static arena; edgekit build-firmware passes the facts below as -D
 * flags from the IR graph:
 *   EK_LINKED_INPUT_BYTES, EK_LINKED_OUTPUT_BYTES, EK_LINKED_ARENA_BYTES,
 *   EK_LINKED_NAME (string), EK_LINKED_HASH (8 comma-separated bytes),
 *   EK_LINKED_SIZE (bytes of weights).
 */
#include <stdint.h>
#include <string.h>

#include "ek_model.h"
#include "ek_model_linked.h"

int edgekit_model_invoke(const int8_t *input, int8_t *output);

const char ek_linked_name[24] = EK_LINKED_NAME;
const uint8_t ek_linked_hash[8] = {EK_LINKED_HASH};

uint32_t ek_model_arena_capacity(void) {
  return EK_LINKED_ARENA_BYTES;
}

int ek_model_get(ek_model_shape *shape) {
  shape->input_bytes = EK_LINKED_INPUT_BYTES;
  shape->output_bytes = EK_LINKED_OUTPUT_BYTES;
  shape->arena_used = EK_LINKED_ARENA_BYTES;
  return 0;
}

int ek_model_invoke(const uint8_t *input, uint8_t *output) {
  return edgekit_model_invoke((const int8_t *)input, (int8_t *)output);
}
