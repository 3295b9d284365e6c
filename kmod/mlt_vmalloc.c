// SPDX-License-Identifier: GPL-2.0
/*
 * MLT: vmalloc areas (FORMAT.md kind "vmalloc").
 *
 * No kernel this module supports has a tracepoint for vmalloc (6.3 added
 * trace/events/vmalloc.h, but its alloc_vmap_area also fires for vmap and
 * ioremap, and knows no caller): a kretprobe on the function every vmalloc
 * goes through, __vmalloc_node_range() (__vmalloc_node_range_noprof()
 * from 6.10, with memory allocation profiling), and kprobes on vfree() and
 * vfree_atomic(). That covers vmalloc, vzalloc, __vmalloc, vmalloc_node,
 * vmalloc_user, kvmalloc's fallback (which calls it directly), module and
 * BPF JIT text (module_alloc(), execmem); not vmap()/ioremap(), which map
 * pages they did not allocate.
 *
 * The entry handler takes the stack: there it is the caller's own, as a
 * tracepoint would see it (at the return the kretprobe trampoline stands in
 * for a return address, which 5.10's ORC unwinder cannot walk past). The
 * call site is the function's caller argument, the return address of the
 * vmalloc call (__builtin_return_address(0) of vmalloc(), kvmalloc_node(),
 * ...): the frames inside the vmalloc family are trimmed as the allocator's
 * are for slab. Sampling counts down the requested size at entry, as for
 * kmalloc; an allocation not sampled returns non-zero from the entry
 * handler, so it costs no return probe. The object's bytes are the size
 * asked for, its alloc_bytes the area's pages (PAGE_ALIGN, no guard page).
 *
 * vfree() may be called in any context; vfree_atomic() and, before 6.2,
 * vfree() from interrupts defer the unmapping, but the address is not
 * reused before it is done, so the object leaves the table at the call.
 * On 6.2+ the deferred work calls vfree() again: an untracked free.
 *
 * Contexts: kprobe handlers run with preemption disabled (ftrace-based on
 * x86 kernels with KPROBES_ON_FTRACE, BRK on arm64). vmalloc may sleep
 * between entry and return: the pinned record travels in the instance's
 * data with the table and its generation (mlt_alloc_leave()).
 * Registration: the free probes first, then the kretprobe; unregistration
 * in reverse (each waits for handlers in flight). Failure is not fatal:
 * the header's kinds then lacks vmalloc, and the kernel log says why.
 */
#define pr_fmt(fmt) "mlt: " fmt

#include <linux/version.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/kprobes.h>
#include <linux/ptrace.h>
#include <linux/uaccess.h>
#include "mlt.h"

/* 6.10: the allocation profiling rename. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
#define MLT_VMALLOC_RANGE	"__vmalloc_node_range_noprof"
#else
#define MLT_VMALLOC_RANGE	"__vmalloc_node_range"
#endif

/*
 * void *__vmalloc_node_range(unsigned long size, unsigned long align,
 *		unsigned long start, unsigned long end, gfp_t gfp_mask,
 *		pgprot_t prot, unsigned long vm_flags, int node,
 *		const void *caller)
 */
#define MLT_VM_ARG_SIZE		0
#define MLT_VM_ARG_CALLER	8

/* The ninth argument, at the function's entry: on the stack. */
static unsigned long mlt_vm_caller(struct pt_regs *regs)
{
#ifdef CONFIG_ARM64
	unsigned long caller = 0;

	/* x0-x7 carry eight; the ninth is the first word on the stack. */
	if (get_kernel_nofault(caller, (unsigned long *)kernel_stack_pointer(regs)))
		return 0;
	return caller;
#else
	return regs_get_kernel_argument(regs, MLT_VM_ARG_CALLER);
#endif
}

struct mlt_vm_call {
	struct mlt_table *t;	/* NULL: not tracked */
	u64 gen;
	u32 sidx;
	u32 size;
};

static int mlt_vm_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct mlt_vm_call *c = (struct mlt_vm_call *)ri->data;
	unsigned long size = regs_get_kernel_argument(regs, MLT_VM_ARG_SIZE);

	c->t = mlt_alloc_enter(size, mlt_vm_caller(regs), MLT_KIND_VMALLOC,
			       &c->sidx);
	if (!c->t)
		return 1;	/* no return probe */
	c->gen = READ_ONCE(c->t->gen);
	c->size = min_t(unsigned long, size, U32_MAX);
	return 0;
}

NOKPROBE_SYMBOL(mlt_vm_entry);

static int mlt_vm_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct mlt_vm_call *c = (struct mlt_vm_call *)ri->data;

	mlt_alloc_leave(c->t, c->gen, c->sidx, regs_return_value(regs),
			c->size, PAGE_ALIGN((size_t)c->size));
	return 0;
}

NOKPROBE_SYMBOL(mlt_vm_return);

static int mlt_vm_free(struct kprobe *kp, struct pt_regs *regs)
{
	mlt_on_free((const void *)regs_get_kernel_argument(regs, 0));
	return 0;
}

NOKPROBE_SYMBOL(mlt_vm_free);

static struct kretprobe mlt_vm_rp = {
	.kp.symbol_name = MLT_VMALLOC_RANGE,
	.entry_handler = mlt_vm_entry,
	.handler = mlt_vm_return,
	.data_size = sizeof(struct mlt_vm_call),
	/* vmalloc sleeps: room for many in flight (misses are counted). */
	.maxactive = 64,
};

static struct kprobe mlt_vm_kp_free = {
	.symbol_name = "vfree",
	.pre_handler = mlt_vm_free,
};

static struct kprobe mlt_vm_kp_free_atomic = {
	.symbol_name = "vfree_atomic",
	.pre_handler = mlt_vm_free,
};

bool mlt_vmalloc_probe_ok;
static bool mlt_vm_atomic_ok;

/* vmallocs not seen because every kretprobe instance was in use. */
unsigned long mlt_vmalloc_missed(void)
{
	return mlt_vmalloc_probe_ok ? mlt_vm_rp.nmissed : 0;
}

int mlt_vmalloc_register(void)
{
	int err;

	mlt_vm_rp.maxactive = max_t(int, mlt_vm_rp.maxactive,
				    4 * num_possible_cpus());
	err = register_kprobe(&mlt_vm_kp_free);
	if (err)
		goto out;
	/* Absent or refused: only vfree_atomic()'s frees are unseen. */
	mlt_vm_atomic_ok = !register_kprobe(&mlt_vm_kp_free_atomic);
	if (!mlt_vm_atomic_ok)
		pr_warn("no kprobe on vfree_atomic: its areas will look leaked\n");
	err = register_kretprobe(&mlt_vm_rp);
	if (!err) {
		mlt_vmalloc_probe_ok = true;
		return 0;
	}
	if (mlt_vm_atomic_ok)
		unregister_kprobe(&mlt_vm_kp_free_atomic);
	mlt_vm_atomic_ok = false;
	unregister_kprobe(&mlt_vm_kp_free);
out:
	pr_warn("no vmalloc tracking: kprobes on %s/vfree refused (%d)\n",
		MLT_VMALLOC_RANGE, err);
	return err;
}

void mlt_vmalloc_unregister(void)
{
	if (!mlt_vmalloc_probe_ok)
		return;
	unregister_kretprobe(&mlt_vm_rp);
	if (mlt_vm_atomic_ok)
		unregister_kprobe(&mlt_vm_kp_free_atomic);
	unregister_kprobe(&mlt_vm_kp_free);
	mlt_vmalloc_probe_ok = false;
	mlt_vm_atomic_ok = false;
}
