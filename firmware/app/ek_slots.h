/*
 * A/B model slots. A new package goes to the slot that is not active; it becomes
 * active only after all its bytes arrived, their CRC-32 matched, the package passed
 * ek_pkg_open and the SHA-256 of its body matched its model_hash (32 bytes). Until then (and after any failure) the previously active
 * package keeps serving.
 *
 * Each slot region starts with a 64-byte record written last, at commit: magic,
 * generation, size, CRC, name, model id (first 8 bytes of model_hash) and the record's own CRC. At boot the
 * slots whose record and data check out are valid, and the one with the highest
 * generation is active, so the active model survives a reset wherever the slot
 * storage survives it (flash on a real board; RAM across a warm reset on QEMU).
 * The package bytes start EK_SLOT_DATA_OFFSET bytes into the region.
 */
#ifndef EK_SLOTS_H
#define EK_SLOTS_H

#include <stdint.h>

#include "ek_board.h"
#include "ek_package.h"

#ifndef EK_SLOT_COUNT
#define EK_SLOT_COUNT 2
#endif

#define EK_SLOT_DATA_OFFSET 64u
#define EK_SLOT_RECORD_MAGIC 0x4C534B45u /* "EKSL" */
#define EK_SLOT_NAME_BYTES 24u
/* The model id INFO reports and the slot record keeps: the first 8 bytes of the
 * package's model_hash (its full SHA-256 is checked against the package itself). */
#define EK_SLOT_HASH_BYTES 8u

enum { EK_SLOT_EMPTY = 0, EK_SLOT_RECEIVING = 1, EK_SLOT_VALID = 2, EK_SLOT_ACTIVE = 3 };

typedef struct {
  uint8_t state;
  uint32_t size;
  uint32_t crc;
  uint32_t generation;
  char name[EK_SLOT_NAME_BYTES];
  uint8_t hash[EK_SLOT_HASH_BYTES];
} ek_slot_info;

/* Result of a slot operation: 0 or a protocol error code (ek_proto.h), a detail and
 * a message. */
typedef struct {
  uint8_t code;
  uint32_t detail;
  const char *message;
} ek_slot_result;

/* Scans the slot records (see above); `limits` are what a package must fit. */
void ek_slots_init(const ek_pkg_limits *limits);

/* Number of bytes a slot holds (the region less the record). */
uint32_t ek_slots_capacity(void);

const ek_slot_info *ek_slots_info(uint32_t slot);

/* Index of the active slot, or -1. */
int ek_slots_active(void);

/* The active package, opened (valid while no commit replaces it); NULL when none. */
const ek_pkg *ek_slots_active_package(void);

/* UPLOAD_BEGIN: *slot and *offset receive the slot and the resume offset. A BEGIN for
 * the package the active slot holds (same size and CRC) erases nothing: it answers the
 * active slot and offset = size, and the COMMIT after it answers at once. */
ek_slot_result ek_slots_begin(uint32_t size, uint32_t crc, const uint8_t name[24],
                              uint8_t *slot, uint32_t *offset);

/* UPLOAD_CHUNK: *next receives the next offset expected. */
ek_slot_result ek_slots_chunk(uint32_t offset, const uint8_t *data, uint32_t n, uint32_t *next,
                              int *duplicate);

/* UPLOAD_COMMIT: *slot receives the newly active slot. With `named` (the request carried
 * them) `size` and `crc` must be the upload's; a COMMIT naming the package that is
 * already active, with no upload in progress, answers its slot again (idempotent). */
ek_slot_result ek_slots_commit(int named, uint32_t size, uint32_t crc, uint8_t *slot);

/* UPLOAD_ABORT. */
ek_slot_result ek_slots_abort(void);

#endif /* EK_SLOTS_H */
