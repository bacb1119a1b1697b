#ifndef EK_SYSTICK_H
#define EK_SYSTICK_H

void ek_systick_init(void);

#endif /* EK_SYSTICK_H */
