/* The model of the model-slot firmware: the active slot's package. */
#include "ek_model.h"

#include "ek_board.h"
#include "ek_slots.h"

static uint8_t arena[EK_ARENA_BYTES] __attribute__((aligned(16)));

uint32_t ek_model_arena_capacity(void) {
  return EK_ARENA_BYTES;
}

int ek_model_get(ek_model_shape *shape) {
  const ek_pkg *pkg = ek_slots_active_package();
  if (pkg == 0) {
    return -1;
  }
  shape->input_bytes = pkg->input_bytes;
  shape->output_bytes = pkg->output_bytes;
  shape->arena_used = pkg->arena_size;
  return 0;
}

int ek_model_invoke(const uint8_t *input, uint8_t *output) {
  const ek_pkg *pkg = ek_slots_active_package();
  if (pkg == 0) {
    return -1;
  }
  return ek_pkg_run(pkg, arena, input, output);
}
