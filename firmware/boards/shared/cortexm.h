/* Cortex-M system registers the board ports use (Armv6-M to Armv8.1-M). */
#ifndef EK_CORTEXM_H
#define EK_CORTEXM_H

#include <stdint.h>

#define EK_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define EK_SYST_CSR EK_REG(0xE000E010u)
#define EK_SYST_RVR EK_REG(0xE000E014u)
#define EK_SYST_CVR EK_REG(0xE000E018u)
#define EK_SCB_ICSR EK_REG(0xE000ED04u)
#define EK_SCB_VTOR EK_REG(0xE000ED08u)
#define EK_SCB_AIRCR EK_REG(0xE000ED0Cu)
#define EK_SCB_CPACR EK_REG(0xE000ED88u)
#define EK_NVIC_ISER(n) EK_REG(0xE000E100u + 4u * (n))
#define EK_NVIC_ICPR(n) EK_REG(0xE000E280u + 4u * (n))

#define EK_ICSR_PENDSTSET (1u << 26)

static inline void ek_nvic_enable(uint32_t irq) {
  EK_NVIC_ICPR(irq / 32u) = 1u << (irq % 32u);
  EK_NVIC_ISER(irq / 32u) = 1u << (irq % 32u);
}

static inline void ek_irq_disable(void) {
  __asm__ volatile("cpsid i" ::: "memory");
}

static inline void ek_irq_enable(void) {
  __asm__ volatile("cpsie i" ::: "memory");
}

static inline void ek_wfi(void) {
  __asm__ volatile("wfi" ::: "memory");
}

static inline void ek_dsb_isb(void) {
  __asm__ volatile("dsb\n\tisb" ::: "memory");
}

/* Runtime set-up of the reset handler: .data copied, .bss zeroed, FPU enabled when
 * the code is built for one, the stack painted (for its high-water mark) and, on
 * Armv8-M Mainline, the stack limit register set so an overflow faults. */
void ek_crt_init(void);

/* Faults and unexpected interrupts end here: the board resets. */
void ek_default_handler(void);

#endif /* EK_CORTEXM_H */
