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
#include <linux/kallsyms.h>
#include "mlt.h"

/*
 * Built and tested from 6.1. Debian 11's 5.10 inlines both functions into
 * vmalloc() and friends (which then fire neither probe), and its ORC
 * unwinder cannot walk back through the ftrace trampoline a nested probe
 * runs from: it would report partial, wrongly attributed vmalloc records.
 */
#define MLT_VMALLOC_PROBES	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0))

/* 6.10: the allocation profiling rename. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
#define MLT_VMALLOC_RANGE	"__vmalloc_node_range_noprof"
#define MLT_VMALLOC_NODE	"__vmalloc_node_noprof"
#else
#define MLT_VMALLOC_RANGE	"__vmalloc_node_range"
#define MLT_VMALLOC_NODE	"__vmalloc_node"
#endif

/*
 * void *__vmalloc_node_range(unsigned long size, unsigned long align,
 *		unsigned long start, unsigned long end, gfp_t gfp_mask,
 *		pgprot_t prot, unsigned long vm_flags, int node,
 *		const void *caller)
 * void *__vmalloc_node(unsigned long size, unsigned long align,
 *		gfp_t gfp_mask, int node, const void *caller)
 */
#define MLT_VM_ARG_SIZE		0
#define MLT_VM_RANGE_CALLER	8
#define MLT_VM_NODE_CALLER	4

/* Argument n at the function's entry (n = 8: the ninth, on the stack). */
static unsigned long mlt_vm_arg(struct pt_regs *regs, unsigned int n)
{
#ifdef CONFIG_ARM64
	unsigned long arg = 0;

	if (n < 8)
		return regs_get_kernel_argument(regs, n);
	/* x0-x7 carry eight; the ninth is the first word on the stack. */
	if (get_kernel_nofault(arg, (unsigned long *)kernel_stack_pointer(regs)))
		return 0;
	return arg;
#else
	return regs_get_kernel_argument(regs, n);
#endif
}

/* The return address at the function's entry. */
static unsigned long mlt_vm_ret(struct pt_regs *regs)
{
#ifdef CONFIG_ARM64
	return procedure_link_pointer(regs);
#else
	unsigned long ret = 0;

	if (get_kernel_nofault(ret, (unsigned long *)kernel_stack_pointer(regs)))
		return 0;
	return ret;
#endif
}

/*
 * __vmalloc_node() (vmalloc(), vzalloc(), __vmalloc(), vmalloc_node()...,
 * and kvmalloc() on 5.10) calls __vmalloc_node_range(), unless the
 * compiler inlined that into it, as Debian 11's 5.10 does: both are
 * probed, and a __vmalloc_node_range() called from __vmalloc_node() is
 * left to the outer probe. Its text: [mlt_vm_node_start, _end).
 */
static unsigned long mlt_vm_node_start, mlt_vm_node_end;

struct mlt_vm_call {
	struct mlt_table *t;	/* NULL: not tracked */
	u64 gen;
	u32 sidx;
	u32 size;
};

static int mlt_vm_entry(struct kretprobe_instance *ri, struct pt_regs *regs,
			unsigned int caller_arg)
{
	struct mlt_vm_call *c = (struct mlt_vm_call *)ri->data;
	unsigned long size = regs_get_kernel_argument(regs, MLT_VM_ARG_SIZE);

	c->t = mlt_alloc_enter(size, mlt_vm_arg(regs, caller_arg),
			       MLT_KIND_VMALLOC, &c->sidx);
	if (!c->t)
		return 1;	/* no return probe */
	c->gen = READ_ONCE(c->t->gen);
	c->size = min_t(unsigned long, size, U32_MAX);
	return 0;
}

static int mlt_vm_range_entry(struct kretprobe_instance *ri,
			      struct pt_regs *regs)
{
	unsigned long ret = mlt_vm_ret(regs);

	if (ret >= mlt_vm_node_start && ret < mlt_vm_node_end)
		return 1;	/* the __vmalloc_node() probe has it */
	return mlt_vm_entry(ri, regs, MLT_VM_RANGE_CALLER);
}

NOKPROBE_SYMBOL(mlt_vm_range_entry);

static int mlt_vm_node_entry(struct kretprobe_instance *ri,
			     struct pt_regs *regs)
{
	return mlt_vm_entry(ri, regs, MLT_VM_NODE_CALLER);
}

NOKPROBE_SYMBOL(mlt_vm_node_entry);

static int mlt_vm_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct mlt_vm_call *c = (struct mlt_vm_call *)ri->data;

	mlt_alloc_leave(c->t, c->gen, c->sidx, regs_return_value(regs),
			c->size, PAGE_ALIGN((size_t)c->size));
	return 0;
}

NOKPROBE_SYMBOL(mlt_vm_return);

/* [start, end) of the function at addr, from its "%pS" text. */
int mlt_vm_func_range(unsigned long addr, unsigned long *start,
		      unsigned long *end)
{
	char sym[KSYM_SYMBOL_LEN];
	unsigned long off, size;
	const char *p;

	snprintf(sym, sizeof(sym), "%pS", (void *)addr);
	p = strchr(sym, '+');
	if (!p || sscanf(p, "+%lx/%lx", &off, &size) != 2 || off >= size)
		return -ENOENT;
	*start = addr - off;
	*end = *start + size;
	return 0;
}

static int mlt_vm_free(struct kprobe *kp, struct pt_regs *regs)
{
	mlt_on_free((const void *)regs_get_kernel_argument(regs, 0));
	return 0;
}

NOKPROBE_SYMBOL(mlt_vm_free);

/* vmalloc sleeps: room for many in flight (misses are counted). */
#define MLT_VM_MAXACTIVE	64

static struct kretprobe mlt_vm_rp = {
	.kp.symbol_name = MLT_VMALLOC_RANGE,
	.entry_handler = mlt_vm_range_entry,
	.handler = mlt_vm_return,
	.data_size = sizeof(struct mlt_vm_call),
	.maxactive = MLT_VM_MAXACTIVE,
};

static struct kretprobe mlt_vm_rp_node = {
	.kp.symbol_name = MLT_VMALLOC_NODE,
	.entry_handler = mlt_vm_node_entry,
	.handler = mlt_vm_return,
	.data_size = sizeof(struct mlt_vm_call),
	.maxactive = MLT_VM_MAXACTIVE,
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
static bool mlt_vm_atomic_ok, mlt_vm_node_ok;

/* vmallocs not seen because every kretprobe instance was in use. */
unsigned long mlt_vmalloc_missed(void)
{
	if (!mlt_vmalloc_probe_ok)
		return 0;
	return mlt_vm_rp.nmissed + (mlt_vm_node_ok ? mlt_vm_rp_node.nmissed : 0);
}

/* The __vmalloc_node() probe and its text; false if it cannot be had. */
static bool mlt_vm_node_register(void)
{
	unsigned long start, end;

	if (register_kretprobe(&mlt_vm_rp_node))
		return false;
	if (mlt_vm_func_range((unsigned long)mlt_vm_rp_node.kp.addr, &start, &end)) {
		unregister_kretprobe(&mlt_vm_rp_node);
		return false;
	}
	mlt_vm_node_start = start;
	mlt_vm_node_end = end;
	return true;
}

int mlt_vmalloc_register(void)
{
	int err;

	if (!MLT_VMALLOC_PROBES) {
		pr_info("no vmalloc tracking before Linux 6.1\n");
		return -EOPNOTSUPP;
	}
	mlt_vm_rp.maxactive = max_t(int, MLT_VM_MAXACTIVE, 4 * num_possible_cpus());
	mlt_vm_rp_node.maxactive = mlt_vm_rp.maxactive;
	err = register_kprobe(&mlt_vm_kp_free);
	if (err)
		goto out;
	/* Absent or refused: only vfree_atomic()'s frees are unseen. */
	mlt_vm_atomic_ok = !register_kprobe(&mlt_vm_kp_free_atomic);
	if (!mlt_vm_atomic_ok)
		pr_warn("no kprobe on vfree_atomic: its areas will look leaked\n");
	/* Before the range probe: it leaves the calls from there to this one. */
	mlt_vm_node_ok = mlt_vm_node_register();
	if (!mlt_vm_node_ok)
		pr_warn("no kretprobe on %s: vmallocs through it are seen only where it calls %s\n",
			MLT_VMALLOC_NODE, MLT_VMALLOC_RANGE);
	err = register_kretprobe(&mlt_vm_rp);
	if (!err) {
		mlt_vmalloc_probe_ok = true;
		return 0;
	}
	if (mlt_vm_node_ok)
		unregister_kretprobe(&mlt_vm_rp_node);
	mlt_vm_node_ok = false;
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
	if (mlt_vm_node_ok)
		unregister_kretprobe(&mlt_vm_rp_node);
	if (mlt_vm_atomic_ok)
		unregister_kprobe(&mlt_vm_kp_free_atomic);
	unregister_kprobe(&mlt_vm_kp_free);
	mlt_vmalloc_probe_ok = false;
	mlt_vm_atomic_ok = false;
	mlt_vm_node_ok = false;
}
