/* Identity of a model linked into the firmware (see ek_model_linked.c). */
#ifndef EK_MODEL_LINKED_H
#define EK_MODEL_LINKED_H

#include <stdint.h>

extern const char ek_linked_name[24];
extern const uint8_t ek_linked_hash[8];

#endif /* EK_MODEL_LINKED_H */
