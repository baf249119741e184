/*
 * The reference VM process: services the rest of the code may call.
 */
#ifndef SYSTEM_SYSTEM_H
#define SYSTEM_SYSTEM_H

#include <stdbool.h>

/* Ask the main loop to end the process with this status (only main exits). */
void vm_request_exit(int status);

/* Guest programs' state is device state; these pause/resume the vCPU threads. */
void cpus_pause_all(void);
/* The same request, without waiting for every vCPU to have parked. */
void cpus_request_pause(void);
void cpus_resume_all(void);

#endif
