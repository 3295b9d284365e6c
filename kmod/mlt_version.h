/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel version tests outside the tracepoint matrix of mlt_probes.c: an
 * out-of-tree module builds for several kernels. Functions, not macros,
 * changed here, so no #ifdef can tell.
 */
#ifndef MLT_VERSION_H
#define MLT_VERSION_H

#include <linux/version.h>

/* arm64: on_task_stack(tsk, sp, size) since 6.1 (5.10: four arguments). */
#define MLT_ARM64_ON_TASK_STACK_SIZE	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0))
/* arm64: ptrauth_strip_insn_pac() is ptrauth_strip_kernel_insn_pac() from 6.4. */
#define MLT_ARM64_STRIP_KERNEL_PAC	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0))

#endif /* MLT_VERSION_H */
