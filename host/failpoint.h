/*
 * failpoint.h - crash and fault injection for the test build.
 *
 * build/bsi-failpoint is linked with failpoints on; build/bsi with them off,
 * where both functions compile to nothing and never fire.
 *
 * BSI_FAILPOINT=NAME[:N]   bsi_failpoint("NAME") kills the process with
 *                          SIGKILL on its Nth hit (default 1st).
 * BSI_FAULT=NAME[:N]       bsi_fault("NAME") returns an errno value (EIO;
 *                          ENOSPC when NAME ends in ".enospc", EXDEV when it
 *                          ends in ".exdev") on its Nth hit,
 *                          which the caller treats as if the syscall had
 *                          failed with it.
 */
#ifndef BSI_FAILPOINT_H
#define BSI_FAILPOINT_H

void bsi_failpoint(const char *name);
int bsi_fault(const char *name);

#endif
