/*
 * The model INFER runs. Two implementations, one per firmware variant:
 *   ek_model_slots.c   the model-slot firmware: the active slot's package, run by the
 *                      package executor (ek_package.c) in a static arena;
 *   ek_model_linked.c  a model compiled to C by edgekit's code generator and linked
 *                      into the image (edgekit build-firmware --model M).
 */
#ifndef EK_MODEL_H
#define EK_MODEL_H

#include <stdint.h>

typedef struct {
  uint32_t input_bytes;  /* all inputs, concatenated */
  uint32_t output_bytes; /* all outputs, concatenated */
  uint32_t arena_used;   /* bytes of the arena the model plans */
} ek_model_shape;

/* Bytes of the arena this firmware has. */
uint32_t ek_model_arena_capacity(void);

/* 0 and the shape when a model is ready to run, -1 when none is. */
int ek_model_get(ek_model_shape *shape);

/* Runs the model once: input_bytes in, output_bytes out. 0 on success. */
int ek_model_invoke(const uint8_t *input, uint8_t *output);

#endif /* EK_MODEL_H */
