/*
 * Arm semihosting (BKPT 0xAB) for Cortex-M: text to the host's console and an
 * exit status for the host. A program built with it must run under a debugger or
 * `qemu-system-arm -semihosting-config enable=on`, or the BKPT faults.
 */
#ifndef EDGEKIT_SEMIHOSTING_H
#define EDGEKIT_SEMIHOSTING_H

/* SYS_WRITE0: writes the NUL-terminated string s (QEMU prints it on stderr). */
void ek_semihosting_write0(const char *s);

/* SYS_EXIT_EXTENDED with ADP_Stopped_ApplicationExit: ends the session; the host
 * (QEMU) exits with status. Does not return. */
void ek_semihosting_exit(int status) __attribute__((noreturn));

#endif /* EDGEKIT_SEMIHOSTING_H */
