/* Arm CMSDK APB timer as a free-running 32-bit tick counter. */
#ifndef EK_CMSDK_TIMER_H
#define EK_CMSDK_TIMER_H

#include <stdint.h>

void ek_cmsdk_timer_init(uintptr_t base);

#endif /* EK_CMSDK_TIMER_H */
