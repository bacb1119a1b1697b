/* The "host" board: the firmware's protocol and executor built with the host gcc for
 * the fuzz and unit tests (tests/firmware/host_port.c). */
#ifndef EK_BOARD_CONFIG_H
#define EK_BOARD_CONFIG_H

#define EK_BOARD_NAME "host"
#ifndef EK_TARGET_NAME
#define EK_TARGET_NAME "cortex-m4" /* packages for this target load */
#endif
#define EK_TICK_HZ 1000000u

#define EK_SLOT_COUNT 2
#define EK_SLOT_ERASE_UNIT 4096u
#define EK_SLOT_WRITE_UNIT 8u /* as STM32L4 flash: exercises the partial-unit path */
#ifndef EK_HOST_SLOT_BYTES
#define EK_HOST_SLOT_BYTES (1024u * 1024u)
#endif

#define EK_ARENA_BYTES (256u * 1024u)

#endif /* EK_BOARD_CONFIG_H */
