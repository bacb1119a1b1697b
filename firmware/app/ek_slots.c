#include "ek_slots.h"

#include <string.h>

#include "ek_crc32.h"
#include "ek_proto.h"
#include "ek_sha256.h"

#if (EK_SLOT_WRITE_UNIT & (EK_SLOT_WRITE_UNIT - 1)) != 0 || EK_SLOT_WRITE_UNIT > 64
#error "EK_SLOT_WRITE_UNIT must be a power of two, at most 64"
#endif
#if EK_SLOT_ERASE_UNIT < 64 || (EK_SLOT_ERASE_UNIT % EK_SLOT_WRITE_UNIT) != 0
#error "EK_SLOT_ERASE_UNIT must hold the slot record and be a multiple of EK_SLOT_WRITE_UNIT"
#endif

/* Record at the start of each slot region (little-endian words). */
enum {
  REC_MAGIC = 0,
  REC_VERSION = 4,
  REC_GENERATION = 8,
  REC_SIZE = 12,
  REC_CRC = 16,
  REC_NAME = 20, /* 24 bytes */
  REC_HASH = 44, /* 8 bytes */
  REC_RECORD_CRC = 52,
  REC_BYTES = 56
};

static ek_slot_info slots[EK_SLOT_COUNT];
static int active = -1;
static ek_pkg active_pkg;
static ek_pkg_limits pkg_limits;

/* The upload in progress. */
static struct {
  int slot; /* -1: none */
  uint32_t size, crc;
  uint32_t received;   /* bytes accepted (programmed + pending) */
  uint32_t programmed; /* bytes of package data written to storage */
  uint32_t erased_end; /* region bytes [0, erased_end) are erased */
  uint8_t pending[EK_SLOT_WRITE_UNIT];
  char name[EK_SLOT_NAME_BYTES];
  /* The last BEGIN named the package the active slot already holds: nothing was erased,
   * and a COMMIT answers the active slot (an upload repeated after a lost answer). */
  uint8_t begin_was_active;
} up = {-1, 0, 0, 0, 0, 0, {0}, {0}, 0};

static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static ek_slot_result ok(void) {
  ek_slot_result r = {0, 0, ""};
  return r;
}

static ek_slot_result err(uint8_t code, uint32_t detail, const char *message) {
  ek_slot_result r;
  r.code = code;
  r.detail = detail;
  r.message = message;
  return r;
}

uint32_t ek_slots_capacity(void) {
  const uint32_t bytes = ek_slot_bytes();
  return bytes > EK_SLOT_DATA_OFFSET ? bytes - EK_SLOT_DATA_OFFSET : 0u;
}

const ek_slot_info *ek_slots_info(uint32_t slot) {
  return slot < EK_SLOT_COUNT ? &slots[slot] : 0;
}

int ek_slots_active(void) {
  return active;
}

const ek_pkg *ek_slots_active_package(void) {
  return active >= 0 ? &active_pkg : 0;
}

static const uint8_t *slot_data(uint32_t slot) {
  return ek_slot_base(slot) + EK_SLOT_DATA_OFFSET;
}

/* Does the SHA-256 of the package body (header_size to the end) equal the header's
 * model_hash, all 32 bytes? Call after ek_pkg_open passed (header_size is in range then).
 * The CRC-32 only says the bytes arrived as the host sent them; this says they are the
 * bytes the package was built with. */
static int body_hash_matches(const uint8_t *pkg, uint32_t size) {
  uint8_t digest[EK_SHA256_BYTES];
  const uint32_t header_size = ek_rd32(pkg + EK_PKG_OFF_HEADER_SIZE);
  ek_sha256(pkg + header_size, size - header_size, digest);
  return memcmp(digest, pkg + EK_PKG_OFF_HASH, EK_PKG_HASH_BYTES) == 0;
}

/* Reads a slot's record and checks the package it describes. */
static int load_slot(uint32_t s, ek_pkg *pkg) {
  const uint8_t *rec = ek_slot_base(s);
  ek_slot_info *info = &slots[s];
  ek_pkg_error perr;
  uint32_t size;
  memset(info, 0, sizeof *info);
  if (ek_rd32(rec + REC_MAGIC) != EK_SLOT_RECORD_MAGIC || ek_rd32(rec + REC_VERSION) != 1u ||
      ek_crc32(rec, REC_RECORD_CRC) != ek_rd32(rec + REC_RECORD_CRC)) {
    return -1;
  }
  size = ek_rd32(rec + REC_SIZE);
  if (size > ek_slots_capacity() || ek_crc32(slot_data(s), size) != ek_rd32(rec + REC_CRC) ||
      ek_pkg_open(slot_data(s), size, &pkg_limits, pkg, &perr) != 0 ||
      !body_hash_matches(slot_data(s), size)) {
    return -1;
  }
  info->state = EK_SLOT_VALID;
  info->size = size;
  info->crc = ek_rd32(rec + REC_CRC);
  info->generation = ek_rd32(rec + REC_GENERATION);
  memcpy(info->name, rec + REC_NAME, EK_SLOT_NAME_BYTES);
  memcpy(info->hash, rec + REC_HASH, EK_SLOT_HASH_BYTES);
  return 0;
}

void ek_slots_init(const ek_pkg_limits *limits) {
  uint32_t s;
  pkg_limits = *limits;
  active = -1;
  up.slot = -1;
  up.begin_was_active = 0;
  for (s = 0; s < EK_SLOT_COUNT; s++) {
    ek_pkg pkg;
    if (load_slot(s, &pkg) == 0 &&
        (active < 0 || slots[s].generation > slots[active].generation)) {
      active = (int)s;
      active_pkg = pkg;
    }
  }
  if (active >= 0) {
    slots[active].state = EK_SLOT_ACTIVE;
  }
}

/* Erases storage up to region byte `end`. */
static int erase_to(uint32_t end) {
  while (up.erased_end < end) {
    if (up.erased_end + EK_SLOT_ERASE_UNIT > ek_slot_bytes()) {
      return -1;
    }
    if (ek_slot_erase((uint32_t)up.slot, up.erased_end, EK_SLOT_ERASE_UNIT) != 0) {
      return -1;
    }
    up.erased_end += EK_SLOT_ERASE_UNIT;
  }
  return 0;
}

/* Programs `n` bytes (a multiple of the write unit) at package offset `at`. */
static int program(uint32_t at, const uint8_t *data, uint32_t n) {
  const uint32_t region = EK_SLOT_DATA_OFFSET + at;
  if (erase_to(region + n) != 0) {
    return -1;
  }
  return ek_slot_program((uint32_t)up.slot, region, data, n);
}

/* The stored byte at package offset i of the upload (i < up.received). */
static uint8_t stored_byte(uint32_t i) {
  if (i < up.programmed) {
    return slot_data((uint32_t)up.slot)[i];
  }
  return up.pending[i - up.programmed];
}

static void drop_upload(void) {
  if (up.slot >= 0) {
    slots[up.slot].state = EK_SLOT_EMPTY;
  }
  up.slot = -1;
  up.begin_was_active = 0;
}

/* Does the active slot hold the package of this size and CRC? */
static int active_holds(uint32_t size, uint32_t crc) {
  return active >= 0 && slots[active].size == size && slots[active].crc == crc;
}

ek_slot_result ek_slots_begin(uint32_t size, uint32_t crc, const uint8_t name[24], uint8_t *slot,
                              uint32_t *offset) {
  uint32_t s;
  if (size > ek_slots_capacity()) {
    return err(EK_E_TOO_LARGE, ek_slots_capacity(), "package larger than a slot");
  }
  if (size < EK_PKG_HEADER_BYTES) {
    return err(EK_E_HEADER, size, "package smaller than its header");
  }
  if (up.slot >= 0 && up.size == size && up.crc == crc) {
    *slot = (uint8_t)up.slot; /* resume */
    *offset = up.received;
    memcpy(up.name, name, EK_SLOT_NAME_BYTES);
    memcpy(slots[up.slot].name, name, EK_SLOT_NAME_BYTES);
    return ok();
  }
  drop_upload();
  if (active_holds(size, crc)) {
    /* Already active (e.g. the answer to a COMMIT was lost and the host starts over):
     * starting an upload would erase the other slot, the previous model. */
    up.begin_was_active = 1;
    *slot = (uint8_t)active;
    *offset = size;
    return ok();
  }
  /* The slot that is not active: the first such one. */
  for (s = 0; s < EK_SLOT_COUNT; s++) {
    if ((int)s != active) {
      break;
    }
  }
  if (s == EK_SLOT_COUNT) {
    return err(EK_E_STATE, 0, "no free slot");
  }
  up.slot = (int)s;
  up.size = size;
  up.crc = crc;
  up.received = 0;
  up.programmed = 0;
  up.erased_end = 0;
  memcpy(up.name, name, EK_SLOT_NAME_BYTES);
  /* Erasing the first unit wipes the old record: the slot no longer holds a model. */
  memset(&slots[s], 0, sizeof slots[s]);
  if (erase_to(EK_SLOT_ERASE_UNIT) != 0) {
    drop_upload();
    return err(EK_E_STATE, 0, "slot storage erase failed");
  }
  slots[s].state = EK_SLOT_RECEIVING;
  slots[s].size = size;
  slots[s].crc = crc;
  memcpy(slots[s].name, name, EK_SLOT_NAME_BYTES);
  *slot = (uint8_t)s;
  *offset = 0;
  return ok();
}

/* Appends bytes at the end of the upload, programming whole write units. */
static int append(const uint8_t *data, uint32_t n) {
  while (n > 0u) {
    const uint32_t fill = up.received - up.programmed; /* bytes pending */
    if (fill == 0u && n >= EK_SLOT_WRITE_UNIT) {
      const uint32_t whole = n & ~(uint32_t)(EK_SLOT_WRITE_UNIT - 1u);
      if (program(up.programmed, data, whole) != 0) {
        return -1;
      }
      up.programmed += whole;
      up.received += whole;
      data += whole;
      n -= whole;
      continue;
    }
    {
      uint32_t take = EK_SLOT_WRITE_UNIT - fill;
      if (take > n) {
        take = n;
      }
      memcpy(up.pending + fill, data, take);
      up.received += take;
      data += take;
      n -= take;
      if (fill + take == EK_SLOT_WRITE_UNIT) {
        if (program(up.programmed, up.pending, EK_SLOT_WRITE_UNIT) != 0) {
          return -1;
        }
        up.programmed += EK_SLOT_WRITE_UNIT;
      }
    }
  }
  return 0;
}

ek_slot_result ek_slots_chunk(uint32_t offset, const uint8_t *data, uint32_t n, uint32_t *next,
                              int *duplicate) {
  uint32_t i, overlap;
  *duplicate = 0;
  if (up.slot < 0) {
    return err(EK_E_STATE, 0, "no upload in progress");
  }
  if (offset > up.received) {
    return err(EK_E_OFFSET, up.received, "chunk beyond the expected offset");
  }
  if ((uint64_t)offset + n > up.size) {
    return err(EK_E_TOO_LARGE, up.size, "chunk runs past the package size");
  }
  overlap = up.received - offset;
  if (overlap > n) {
    overlap = n;
  }
  for (i = 0; i < overlap; i++) {
    if (stored_byte(offset + i) != data[i]) {
      return err(EK_E_OFFSET, up.received, "chunk differs from the bytes already received");
    }
  }
  if (overlap == n && n > 0u) {
    *duplicate = 1;
  }
  if (append(data + overlap, n - overlap) != 0) {
    drop_upload();
    return err(EK_E_STATE, 0, "slot storage write failed");
  }
  *next = up.received;
  return ok();
}

ek_slot_result ek_slots_commit(int named, uint32_t size, uint32_t crc_named, uint8_t *slot) {
  uint8_t rec[EK_SLOT_DATA_OFFSET];
  ek_pkg pkg;
  ek_pkg_error perr;
  uint32_t s, gen = 0, crc;
  if (up.slot < 0) {
    /* Idempotent: committing the package that is already active answers its slot. */
    if (named ? active_holds(size, crc_named) : (up.begin_was_active && active >= 0)) {
      *slot = (uint8_t)active;
      return ok();
    }
    return err(EK_E_STATE, 0, "no upload in progress");
  }
  if (named && (size != up.size || crc_named != up.crc)) {
    return err(EK_E_STATE, up.size, "COMMIT names another package than the upload");
  }
  if (up.received != up.size) {
    return err(EK_E_OFFSET, up.received, "package incomplete");
  }
  s = (uint32_t)up.slot;
  if (up.received > up.programmed) { /* the tail, padded to a write unit */
    const uint32_t fill = up.received - up.programmed;
    memset(up.pending + fill, 0xFF, EK_SLOT_WRITE_UNIT - fill);
    if (program(up.programmed, up.pending, EK_SLOT_WRITE_UNIT) != 0) {
      drop_upload();
      return err(EK_E_STATE, 0, "slot storage write failed");
    }
    up.programmed += EK_SLOT_WRITE_UNIT;
  }
  crc = ek_crc32(slot_data(s), up.size);
  if (crc != up.crc) {
    drop_upload();
    return err(EK_E_CRC, crc, "package CRC mismatch");
  }
  if (ek_pkg_open(slot_data(s), up.size, &pkg_limits, &pkg, &perr) != 0) {
    drop_upload();
    return err(EK_E_HEADER, perr.reason | ((perr.op & 0xFFFFu) << 16), perr.message);
  }
  if (!body_hash_matches(slot_data(s), up.size)) {
    drop_upload();
    return err(EK_E_HEADER, EK_PKG_E_HASH | (0xFFFFu << 16), "body SHA-256 differs from model_hash");
  }
  for (uint32_t k = 0; k < EK_SLOT_COUNT; k++) {
    if (slots[k].state >= EK_SLOT_VALID && slots[k].generation >= gen) {
      gen = slots[k].generation + 1u;
    }
  }
  memset(rec, 0xFF, sizeof rec);
  wr32(rec + REC_MAGIC, EK_SLOT_RECORD_MAGIC);
  wr32(rec + REC_VERSION, 1u);
  wr32(rec + REC_GENERATION, gen);
  wr32(rec + REC_SIZE, up.size);
  wr32(rec + REC_CRC, up.crc);
  memcpy(rec + REC_NAME, up.name, EK_SLOT_NAME_BYTES);
  memcpy(rec + REC_HASH, slot_data(s) + EK_PKG_OFF_HASH, EK_SLOT_HASH_BYTES);
  wr32(rec + REC_RECORD_CRC, ek_crc32(rec, REC_RECORD_CRC));
  if (ek_slot_program(s, 0, rec, sizeof rec) != 0) {
    drop_upload();
    return err(EK_E_STATE, 0, "slot record write failed");
  }
  if (active >= 0) {
    slots[active].state = EK_SLOT_VALID;
  }
  slots[s].state = EK_SLOT_ACTIVE;
  slots[s].size = up.size;
  slots[s].crc = up.crc;
  slots[s].generation = gen;
  memcpy(slots[s].name, up.name, EK_SLOT_NAME_BYTES);
  memcpy(slots[s].hash, rec + REC_HASH, EK_SLOT_HASH_BYTES);
  active = (int)s;
  active_pkg = pkg;
  up.slot = -1;
  *slot = (uint8_t)s;
  return ok();
}

ek_slot_result ek_slots_abort(void) {
  drop_upload(); /* nothing to drop is fine too: ABORT is idempotent */
  return ok();
}
