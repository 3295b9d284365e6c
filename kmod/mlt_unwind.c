// SPDX-License-Identifier: GPL-2.0
/*
 * MLT: find the stack record of an allocation, starting at its call site.
 *
 * The generic way is stack_trace_save() from the probe, dropping every
 * frame above the tracepoint's call_site, then hashing the frames into the
 * stack table. With frame pointers (arm64) that is cheap. With x86_64's ORC
 * unwinder every frame is an ORC table lookup, a module-tree lookup for
 * module text and stack bounds checks, and five to seven frames (the
 * unwinder's own, this module's, the tracepoint's, the allocator's) go by
 * before the first one kept: full mode cost ~12x a kmalloc+kfree. So on ORC
 * kernels three things are learnt and then checked against the stack on
 * every use, so that a wrong guess costs time, never a wrong answer:
 *
 * 1. Where the call site's frame is. The distance from this function's
 *    frame to the caller's stack pointer depends only on the code between
 *    the tracepoint and here. It is learnt per call site from a complete
 *    walk, and checked by reading the word below the caller's stack
 *    pointer: it must be call_site, the return address its call pushed.
 *    It only tells where to look for a cached trace (2.). There is no
 *    "short walk" from the call site: the unwinder needs the caller's %rbp
 *    to get past frame-pointer and stack-realigning functions, and that
 *    value is nowhere this module can read it without walking the frames
 *    below the call site (the allocator and gcc reuse %rbp freely), so a
 *    walk seeded at the call site stopped early and silently, and the same
 *    leak got different ids on different hosts. A stack that is not
 *    cached is walked completely, as stack_trace_save() would.
 *
 * 2. Whole stacks ("traces"). A frame that finds its caller's frame at a
 *    constant distance from its own stack pointer (almost every kernel
 *    function: no frame pointer, no realignment, no register frame) puts
 *    the next return address at a constant offset. A chain of such frames
 *    is fully described by the return addresses and their slots' offsets
 *    from the call site's stack pointer, so when every slot still holds
 *    the same address, the unwinder would find the same frames, and the
 *    stack record is known without unwinding. Whether a frame is such a
 *    frame is asked of the unwinder itself: one step from the frame with
 *    two different sets of poisoned registers must give the same caller,
 *    on the same stack, through an ordinary return address.
 *
 * 3. How the walk ends: at the depth limit, at code that ends every stack
 *    (kernel threads), or at the user registers of a system call or
 *    exception, which are checked to still be there and to be user mode.
 *
 * Learning costs two unwinder steps per frame, so a miss learns only once
 * in MLT_LEARN_EVERY per CPU; a call site reached by more stacks than its
 * sets hold (MLT_TRACE_PROBES of MLT_TRACE_WAYS), and a stack through a
 * frame that finds its caller through %rbp (other than do_syscall_64's),
 * cost a complete walk.
 *
 * mlt_verify_stack() (module parameter verify, for tests) compares every
 * stack found with what stack_trace_save(), the kernel's own walk, gives.
 */
#define pr_fmt(fmt) "mlt: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/hash.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/stacktrace.h>
#include <linux/uaccess.h>
#include <linux/kprobes.h>
#include <asm/irq_regs.h>
#ifdef CONFIG_ARM64
#include <asm/pointer_auth.h>
#include <asm/stacktrace.h>
#endif
#include "mlt.h"
#include "mlt_version.h"

static bool mlt_verify_reported;	/* the first mismatch is logged */

#ifdef CONFIG_UNWINDER_ORC
#include <asm/unwind.h>
#include <asm/ptrace.h>
#include <asm/segment.h>
#endif

/*
 * Frames walked from the probe: the depth and the frames above the call
 * site. A kind probed at its allocator's entry (vmalloc: a breakpoint, its
 * exception frames, and for vmalloc's own nested vmalloc the outer call's
 * frames) has more of those: it walks the whole buffer.
 */
static unsigned int mlt_walk_max(const struct mlt_table *t, u32 kind)
{
	return kind == MLT_KIND_SLAB ? t->depth + MLT_TRIM_SLACK : MLT_BUF_FRAMES;
}

/* Index of the allocation call site in a stack captured from the probe. */
static unsigned int mlt_trim(const unsigned long *buf, unsigned int nr,
			     unsigned long call_site)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (buf[i] == call_site)
			return i;
	/* Fallback: skip our own frames, then the tracepoint and allocator. */
	mlt_count(MLT_C_TRIM_FALLBACK, 1);
	for (i = 0; i < nr && within_module(buf[i], THIS_MODULE); i++)
		;
	i += MLT_FALLBACK_SKIP;
	return i < nr ? i : nr;
}

/*
 * Stack record of nr frames, pinned, or MLT_NIL when the table is full, or
 * MLT_SKIP for allocations made by this module (report buffers).
 */
static u32 mlt_record(struct mlt_table *t, const unsigned long *f,
		      unsigned int nr, u32 kind)
{
	unsigned int i;

	/*
	 * This module allocates in task context only. An interrupt's stack
	 * goes on into what it interrupted, which may be this module.
	 */
	if (in_task())
		for (i = 0; i < nr; i++)
			if (within_module(f[i], THIS_MODULE))
				return MLT_SKIP;
	return mlt_stack_get(t, f, nr, kind);
}

/*
 * Frames kept of nr captured from the probe: from the call site (at
 * *start), at most depth. No call site found: the call site alone.
 */
static unsigned int mlt_kept(unsigned long *buf, unsigned int nr,
			     unsigned long call_site, unsigned int depth,
			     unsigned int *start)
{
	*start = mlt_trim(buf, nr, call_site);
	if (*start < nr)
		return min(nr - *start, depth);
	*start = 0;
	buf[0] = call_site;
	return 1;
}

/*
 * A hard IRQ's stack ends where the interrupt came in: the interrupted
 * code's frames, from its instruction pointer on, would make a new stack
 * record for every place an interrupt can hit. (The ORC walk below also
 * cuts softirq stacks, at the switch off the IRQ stack.)
 */
static unsigned int mlt_cut_at_irq_regs(const unsigned long *f,
					unsigned int nr)
{
	struct pt_regs *regs;
	unsigned int i;

	if (!hardirq_count())
		return nr;
	regs = get_irq_regs();
	if (!regs || user_mode(regs))
		return nr;
	for (i = 1; i < nr; i++)
		if (f[i] == instruction_pointer(regs))
			return i;
	return nr;
}

#if defined(CONFIG_ARM64) && MLT_ARM64_ON_TASK_STACK_SIZE
#if MLT_ARM64_STRIP_KERNEL_PAC
#define mlt_strip_pac(pc)	ptrauth_strip_kernel_insn_pac(pc)
#else
#define mlt_strip_pac(pc)	ptrauth_strip_insn_pac(pc)
#endif

/*
 * arm64: a softirq run on interrupt exit or from local_bh_enable() runs on
 * the IRQ stack, entered through call_on_irq_stack(), whose frame record
 * is on the task stack; beyond it lies the interrupted code. The frame
 * records are what stack_trace_save() follows, one return address each:
 * the address read from a record returns into the function whose record
 * the same record links to. Returns how many frames, from the call site
 * on, belong to functions whose records are not on the task stack, or nr
 * when the walk does not start off the task stack (ksoftirqd; hard IRQs
 * are cut at their registers instead) or the chain cannot be followed.
 */
static unsigned int mlt_cut_at_stack_switch(unsigned long call_site,
					    unsigned int nr)
{
	unsigned long fp = (unsigned long)__builtin_frame_address(0);
	unsigned long next, pc;
	unsigned int i, n = 0;
	bool seen = false;

	if (hardirq_count() || !in_serving_softirq() ||
	    on_task_stack(current, fp, 2 * sizeof(long)))
		return nr;
	for (i = 0; i < MLT_BUF_FRAMES + MLT_MAX_DEPTH; i++) {
		if ((fp & (sizeof(long) - 1)) ||
		    get_kernel_nofault(next, (unsigned long *)fp) ||
		    get_kernel_nofault(pc, (unsigned long *)(fp + sizeof(long))))
			return nr;
		if (on_task_stack(current, next, 2 * sizeof(long)))
			return seen ? min(n, nr) : nr;
		if (!seen && mlt_strip_pac(pc) == call_site)
			seen = true;
		n += seen;
		if (n >= nr)
			return nr;
		/* Records go up the stack, until it switches. */
		if (next <= fp)
			return nr;
		fp = next;
	}
	return nr;
}
#else
/*
 * Not arm64, or arm64 before 6.1 (on_task_stack() took a struct
 * stack_info then): no cut, a softirq's stack goes on into the
 * interrupted code.
 */
static unsigned int mlt_cut_at_stack_switch(unsigned long call_site,
					    unsigned int nr)
{
	return nr;
}
#endif

/* Capture from the probe with stack_trace_save(), trimmed at call_site. */
static u32 __maybe_unused mlt_stack_saved(struct mlt_table *t,
					  unsigned long *buf,
					  unsigned long call_site, u32 kind)
{
	unsigned int nr, start;

	nr = stack_trace_save(buf, mlt_walk_max(t, kind), 0);
	mlt_count(MLT_C_UNWIND_COMPLETE, 1);
	nr = mlt_kept(buf, nr, call_site, t->depth, &start);
	nr = mlt_cut_at_irq_regs(buf + start, nr);
	if (buf[start] == call_site)
		nr = mlt_cut_at_stack_switch(call_site, nr);
	return mlt_record(t, buf + start, nr, kind);
}

/*
 * Of the nr frames a kind with no call site (pages: mlt_pages.c) walked
 * with mlt_walk_probe(), its call site at buf[start]: how many, from the
 * call site on, belong to this context (cut where an interrupt came in, as
 * for the others).
 */
unsigned int mlt_stack_own(const unsigned long *buf, unsigned int start,
			   unsigned int nr)
{
	unsigned int n = mlt_cut_at_irq_regs(buf + start, nr - start);

	return mlt_cut_at_stack_switch(buf[start], n);
}

/*
 * The record of the n frames at buf[start] (mlt_stack_own()), cut at the
 * depth. Pinned record, MLT_NIL or MLT_SKIP.
 */
u32 mlt_stack_record(struct mlt_table *t, unsigned long *buf,
		     unsigned int start, unsigned int n, u32 kind)
{
	return mlt_record(t, buf + start, min(n, t->depth), kind);
}

/*
 * The test oracle (module parameter verify): the kernel's own walk of this
 * allocation's stack, trimmed and cut like ours, must give exactly the
 * frames of stack record sidx. In interrupt context our stack stops where
 * the interrupt came in and the kernel's goes on, so there the record must
 * be a prefix of it. buf holds MLT_BUF_FRAMES and is free for use.
 */
void mlt_verify_stack(struct mlt_table *t, unsigned long *buf,
		      unsigned long call_site, u32 sidx)
{
	const struct mlt_stack *st = mlt_stk(t, sidx);
	const unsigned long *f = mlt_stack_frames(t, sidx);
	unsigned int nr, start;
	bool ok;

	/* Pages have no call site: the record's first frame is the one found. */
	if (!call_site)
		call_site = f[0];
	nr = stack_trace_save(buf, mlt_walk_max(t, st->kind), 0);
	nr = mlt_kept(buf, nr, call_site, t->depth, &start);
	ok = (in_task() ? st->nr == nr : st->nr <= nr) &&
	     !memcmp(f, buf + start, st->nr * sizeof(*buf));
	mlt_count(MLT_C_VERIFY_CHECKS, 1);
	if (ok)
		return;
	mlt_count(MLT_C_VERIFY_MISMATCHES, 1);
	if (!xchg(&mlt_verify_reported, true))
		pr_warn("verify: stack of %pS: recorded %u frames ending %pS, kernel walk %u ending %pS\n",
			(void *)call_site, st->nr,
			(void *)f[st->nr - 1], nr,
			(void *)buf[start + nr - 1]);
}

#ifdef CONFIG_UNWINDER_ORC

/*
 * Call-site distances: one 64-bit word per entry, read and written without
 * a lock. Kernel and module text live in the top 2 GiB, whose addresses
 * share their upper 32 bits, so the low 32 bits name the site. Entry =
 * site << 32 | distance from our anchor to the caller's stack pointer;
 * distance MLT_SITE_COMPLETE means "always walk completely".
 */
#define MLT_SITE_BITS		12
#define MLT_SITE_MAX_DIST	4096U	/* a sane bound for the frames between */
#define MLT_TEXT_HIGH		0xffffffffUL
#define MLT_LEARN_EVERY		8	/* trace misses per learning attempt */
#define MLT_POISON_A		0x5a5a5a5a5a5a5a5aUL
#define MLT_POISON_B		0xa5a5a5a5a5a5a5a5UL

static u64 mlt_sites[1U << MLT_SITE_BITS];

/* Off: every stack is walked with stack_trace_save(), as elsewhere. */
static bool mlt_stack_cache = true;
module_param_named(stack_cache, mlt_stack_cache, bool, 0644);
MODULE_PARM_DESC(stack_cache, "x86_64 (ORC): learn and check stacks instead of walking each one");
static DEFINE_PER_CPU(u32, mlt_trace_misses);

size_t mlt_trace_mem(u32 traces)
{
	return (size_t)traces * sizeof(struct mlt_trace);
}

size_t mlt_unwind_static_mem(void)
{
	return sizeof(mlt_sites);
}

static bool mlt_is_text_high(unsigned long addr)
{
	return (addr >> 32) == MLT_TEXT_HIGH;
}

/*
 * In interrupt context a stack ends where the interrupt came in: where the
 * walk reaches the registers of the interrupted code or leaves the stack it
 * started on (the IRQ stack, for handlers and softirqs run on interrupt
 * exit). What lies beyond belongs to whatever was interrupted, and would
 * make a new stack record for every place an interrupt can hit.
 */
static bool mlt_irq_boundary(const struct unwind_state *state,
			     enum stack_type first)
{
	return !in_task() && (state->regs || state->stack_info.type != first);
}

/*
 * Complete walk from this frame, like stack_trace_save() but cut at an
 * interrupt's boundary, noting the caller's stack pointer when the call
 * site's frame goes by.
 */
static unsigned int mlt_walk_complete(unsigned long *buf, unsigned int max,
				      unsigned long call_site,
				      unsigned long *site_sp)
{
	struct unwind_state state;
	enum stack_type first;
	unsigned long addr;
	unsigned int n = 0;

	*site_sp = 0;
	unwind_start(&state, current, NULL, NULL);
	for (first = state.stack_info.type;
	     n < max && !unwind_done(&state) && !mlt_irq_boundary(&state, first);
	     unwind_next_frame(&state)) {
		addr = unwind_get_return_address(&state);
		if (!addr)
			break;
		if (addr == call_site && !*site_sp)
			*site_sp = state.sp;
		buf[n++] = addr;
	}
	return n;
}

/*
 * A complete walk from the probe of a kind with no call site (pages), cut
 * at an interrupt's boundary as slab stacks are.
 */
unsigned int mlt_walk_probe(unsigned long *buf, unsigned int max)
{
	unsigned long sp;

	mlt_count(MLT_C_UNWIND_COMPLETE, 1);
	return mlt_walk_complete(buf, max, 0, &sp);
}

/* ---- traces ----------------------------------------------------------- */

enum mlt_step_kind { MLT_STEP_CALL, MLT_STEP_END, MLT_STEP_USER, MLT_STEP_OTHER };

struct mlt_step {
	enum mlt_step_kind kind;
	unsigned long ip, sp;
	unsigned long regs;	/* MLT_STEP_USER: where the user registers are */
};

/*
 * One unwinder step from the frame at (ip, sp) with %rbp = bp and every
 * other register a frame could locate its caller through set to poison.
 */
static void mlt_step(unsigned long ip, unsigned long sp, unsigned long bp,
		     unsigned long poison, struct mlt_step *out)
{
	struct unwind_state state;
	struct pt_regs regs = {
		.ip = ip - 1, .sp = sp, .cs = __KERNEL_CS,
		.bp = bp, .r10 = poison, .r13 = poison,
		.di = poison, .dx = poison,
	};

	out->kind = MLT_STEP_OTHER;
	out->ip = 0;
	out->sp = 0;
	out->regs = 0;
	unwind_start(&state, current, &regs, NULL);
	if (state.error)
		return;
	if (unwind_done(&state)) {
		out->kind = MLT_STEP_END;
		return;
	}
	if (state.regs) {
		if (user_mode(state.regs) && state.regs == task_pt_regs(current)) {
			out->kind = MLT_STEP_USER;
			out->regs = (unsigned long)state.regs;
		}
		return;
	}
	/* An ordinary return address on the same stack. */
	if (!on_stack(&state.stack_info, (void *)sp, sizeof(long)))
		return;
	out->ip = unwind_get_return_address(&state);
	out->sp = state.sp;
	if (out->ip && READ_ONCE_NOCHECK(*((unsigned long *)out->sp - 1)) == out->ip)
		out->kind = MLT_STEP_CALL;
}

static bool mlt_steps_agree(const struct mlt_step *a, const struct mlt_step *b)
{
	return a->kind == b->kind && a->ip == b->ip && a->sp == b->sp &&
	       a->regs == b->regs;
}

/*
 * The frame at the top of a task stack entered from user mode: the entry
 * code's call, whose return address sits just below the user registers.
 * Returns its return address, or 0.
 */
static unsigned long mlt_entry_frame(struct pt_regs *regs)
{
	unsigned long ip;
	struct mlt_step a;

	if (!user_mode(regs))
		return 0;
	ip = READ_ONCE_NOCHECK(*((unsigned long *)regs - 1));
	/* Not text: no ORC entry, the step fails. */
	mlt_step(ip, (unsigned long)regs, MLT_POISON_A, MLT_POISON_A, &a);
	return a.kind == MLT_STEP_USER && a.regs == (unsigned long)regs ? ip : 0;
}

/*
 * Frame k of the stack (0 = the call site's) at (ip, sp) finds its caller
 * through %rbp: do_syscall_64 does, its frame moved by the random stack
 * offset of each system call. Its caller is the entry code's frame at the
 * top of the stack when %rbp, as frame k has it, is where it was when
 * learnt relative to the user registers. Learn where the unwinder gets
 * that %rbp from: the slot in which a frame below k saved it (the last
 * frame whose step changed it), or %rbp itself at mlt_stack_of(), anchor.
 * Returns the entry frame's return address, or 0.
 */
static unsigned long mlt_learn_entry(unsigned long call_site, unsigned int k,
				     unsigned long ip, unsigned long sp,
				     unsigned long sp0, unsigned long anchor,
				     struct mlt_trace *tr)
{
	struct pt_regs *regs = task_pt_regs(current);
	unsigned long old_sp, old_bp, lo = 0, hi = 0, p, slot = 0, entry;
	struct unwind_state state;
	struct mlt_step a, b;
	int idx = -1;

	entry = mlt_entry_frame(regs);
	if (!entry)
		return 0;
	for (unwind_start(&state, current, NULL, NULL); !unwind_done(&state);) {
		if (!unwind_get_return_address(&state))
			return 0;
		if (idx >= 0 || state.ip == call_site)
			idx++;
		if (idx == k)
			break;
		old_sp = state.sp;
		old_bp = state.bp;
		unwind_next_frame(&state);
		/* The slot search below reads between the two: one stack. */
		if (!unwind_done(&state) &&
		    !on_stack(&state.stack_info, (void *)old_sp, sizeof(long)))
			return 0;
		if (state.bp != old_bp) {
			lo = old_sp;
			hi = state.sp;
		}
	}
	if (idx != k || state.ip != ip || state.sp != sp ||
	    (unsigned long)regs - state.bp > U16_MAX)
		return 0;
	/* With that %rbp, one step must reach the entry frame. */
	mlt_step(ip, sp, state.bp, MLT_POISON_A, &a);
	mlt_step(ip, sp, state.bp, MLT_POISON_B, &b);
	if (!mlt_steps_agree(&a, &b) || a.kind != MLT_STEP_CALL ||
	    a.ip != entry || a.sp != (unsigned long)regs)
		return 0;
	tr->regs_off = (unsigned long)regs - state.bp;
	/* Saved below mlt_stack_of() or never: %rbp there is the value. */
	tr->bp_in_reg = hi <= anchor;
	if (tr->bp_in_reg)
		return entry;
	/* The one word in the saving frame that holds it is its slot. */
	for (p = lo; p + sizeof(long) <= hi; p += sizeof(long)) {
		if (READ_ONCE_NOCHECK(*(unsigned long *)p) != state.bp)
			continue;
		if (slot)
			return 0;
		slot = p;
	}
	if (!slot || (long)(slot - sp0) < S16_MIN || (long)(slot - sp0) > S16_MAX)
		return 0;
	tr->bp_off = slot - sp0;
	return entry;
}

/*
 * Learn the stack of the caller at (call_site, sp0) into buf and tr.
 * Returns the number of frames, or 0 when the stack cannot be described
 * (the caller then walks it completely).
 */
static unsigned int mlt_trace_learn(unsigned long *buf, unsigned int depth,
				    unsigned long call_site, unsigned long sp0,
				    unsigned long anchor, struct mlt_trace *tr)
{
	unsigned long ip = call_site, sp = sp0, off;
	struct mlt_step a, b;
	unsigned int n = 1;

	buf[0] = call_site;
	tr->off[0] = 0;
	tr->end = MLT_TRACE_DEPTH;
	tr->regs_off = 0;
	tr->bp_in_reg = 0;
	tr->bp_off = 0;
	while (n < depth) {
		mlt_step(ip, sp, MLT_POISON_A, MLT_POISON_A, &a);
		mlt_step(ip, sp, MLT_POISON_B, MLT_POISON_B, &b);
		if (!mlt_steps_agree(&a, &b) || a.kind == MLT_STEP_OTHER) {
			ip = mlt_learn_entry(call_site, n - 1, ip, sp, sp0,
					     anchor, tr);
			if (!ip)
				return 0;
			tr->end = MLT_TRACE_ENTRY;
			tr->off[n] = 0;	/* read just below the user registers */
			buf[n++] = ip;
			break;
		}
		if (a.kind == MLT_STEP_END) {
			tr->end = MLT_TRACE_END;
			break;
		}
		if (a.kind == MLT_STEP_USER) {
			off = a.regs - sp0;
			if (off > U16_MAX)
				return 0;
			tr->end = MLT_TRACE_USER;
			tr->regs_off = off;
			break;
		}
		if (a.kind != MLT_STEP_CALL)
			return 0;
		off = a.sp - sizeof(long) - sp0;
		if (a.sp <= sp || off > U16_MAX)
			return 0;
		tr->off[n] = off;
		buf[n++] = a.ip;
		ip = a.ip;
		sp = a.sp;
	}
	tr->site = (u32)call_site;
	tr->nr = n;
	return n;
}

/*
 * Does the kernel's complete walk from here find exactly these frames
 * after the call site (and stop after them, unless cut at the depth)?
 */
static bool mlt_walk_confirms(const unsigned long *f, unsigned int nr,
			      bool stops, unsigned long call_site)
{
	struct unwind_state state;
	enum stack_type first;
	unsigned long addr;
	unsigned int n = 0;
	bool seen = false;

	unwind_start(&state, current, NULL, NULL);
	for (first = state.stack_info.type;
	     !unwind_done(&state) && !mlt_irq_boundary(&state, first);
	     unwind_next_frame(&state)) {
		addr = unwind_get_return_address(&state);
		if (!addr)
			break;
		if (!seen && addr != call_site)
			continue;
		seen = true;
		if (n == nr)
			return !stops;
		if (f[n++] != addr)
			return false;
	}
	return n == nr;
}

/* Does the trace (a consistent copy) still describe the stack above sp0? */
static bool mlt_trace_matches(const struct mlt_table *t,
			      const struct mlt_trace *tr, unsigned long sp0,
			      unsigned long bp)
{
	const unsigned long *f = mlt_stack_frames(t, tr->sidx);
	unsigned long base = (unsigned long)task_stack_page(current);
	bool on_task_stack = sp0 >= base && sp0 < base + THREAD_SIZE;
	unsigned long slot, v;
	struct pt_regs *regs = task_pt_regs(current);
	unsigned int i;

	for (i = 1; i < tr->nr; i++) {
		if (tr->end == MLT_TRACE_ENTRY && i == tr->nr - 1)
			slot = (unsigned long)regs - sizeof(long);
		else
			slot = sp0 + tr->off[i];
		if (on_task_stack && slot + sizeof(long) <= base + THREAD_SIZE)
			v = READ_ONCE_NOCHECK(*(unsigned long *)slot);
		else if (get_kernel_nofault(v, (unsigned long *)slot))
			return false;	/* interrupt stacks: bounds unknown here */
		if (v != f[i])
			return false;
	}
	if (tr->end == MLT_TRACE_ENTRY) {
		if (!on_task_stack || !user_mode(regs))
			return false;
		if (!tr->bp_in_reg) {
			slot = sp0 + tr->bp_off;
			if (slot < base || slot + sizeof(long) > base + THREAD_SIZE)
				return false;
			bp = READ_ONCE_NOCHECK(*(unsigned long *)slot);
		}
		return (unsigned long)regs - bp == tr->regs_off;
	}
	if (tr->end == MLT_TRACE_USER)
		return (unsigned long)regs == sp0 + tr->regs_off && user_mode(regs);
	return true;
}

/*
 * Set number probe of those a call site's traces may use: consecutive sets
 * from its hash, so a call site reached by many stacks (a helper such as
 * kstrdup) keeps up to MLT_TRACE_WAYS * MLT_TRACE_PROBES of them.
 */
static struct mlt_trace *mlt_trace_set(const struct mlt_table *t,
				       unsigned long call_site,
				       unsigned int probe)
{
	u32 mask = (1U << t->trace_bits) - 1;
	u32 set = (hash_long(call_site, t->trace_bits) + probe) & mask;

	return &t->traces[set * MLT_TRACE_WAYS];
}

static unsigned int mlt_trace_probes(const struct mlt_table *t)
{
	return min(MLT_TRACE_PROBES, 1U << t->trace_bits);
}

/* A cached trace of the call site that matches the stack (its record
 * pinned), or MLT_NIL.
 */
static u32 mlt_trace_find(struct mlt_table *t, unsigned long call_site,
			  unsigned long sp0, unsigned long bp, u32 kind)
{
	unsigned int probes = mlt_trace_probes(t), p, w;
	const struct mlt_trace *set;
	struct mlt_trace tr;
	u32 seq, nr_stacks;

	for (p = 0; p < probes; p++) {
		set = mlt_trace_set(t, call_site, p);
		for (w = 0; w < MLT_TRACE_WAYS; w++) {
			/* Pairs with the write barriers in mlt_trace_store(). */
			seq = smp_load_acquire(&set[w].seq);
			if ((seq & 1) || READ_ONCE(set[w].site) != (u32)call_site)
				continue;
			memcpy(&tr, &set[w], sizeof(tr));
			smp_rmb();	/* copy before re-reading seq */
			if (READ_ONCE(set[w].seq) != seq)
				continue;	/* being rewritten */
			/* Pairs with the release in mlt_stack_get(): complete. */
			nr_stacks = smp_load_acquire(&t->nr_stacks);
			if (!tr.nr || tr.nr > MLT_MAX_DEPTH || tr.sidx >= nr_stacks ||
			    READ_ONCE(mlt_stk(t, tr.sidx)->seq) != tr.sseq ||
			    READ_ONCE(mlt_stk(t, tr.sidx)->nr) != tr.nr ||
			    READ_ONCE(mlt_stk(t, tr.sidx)->kind) != kind ||
			    !mlt_trace_matches(t, &tr, sp0, bp))
				continue;
			/*
			 * Pinned with seq unchanged (the pin is a full
			 * barrier): the record was not reused since learnt.
			 */
			if (!mlt_stack_pin(t, tr.sidx))
				continue;
			if (READ_ONCE(mlt_stk(t, tr.sidx)->seq) == tr.sseq)
				return tr.sidx;
			mlt_stack_put(t, tr.sidx);
		}
	}
	return MLT_NIL;
}

/*
 * The entry to overwrite: an empty one among the call site's sets, else
 * the next in turn. Called with trace_lock held.
 */
static struct mlt_trace *mlt_trace_victim(struct mlt_table *t,
					  unsigned long call_site)
{
	unsigned int probes = mlt_trace_probes(t), p, w, turn;
	struct mlt_trace *set;

	for (p = 0; p < probes; p++) {
		set = mlt_trace_set(t, call_site, p);
		for (w = 0; w < MLT_TRACE_WAYS; w++)
			if (!set[w].site)
				return &set[w];
	}
	turn = t->trace_clock++ % (probes * MLT_TRACE_WAYS);
	return &mlt_trace_set(t, call_site, turn / MLT_TRACE_WAYS)[turn % MLT_TRACE_WAYS];
}

static void mlt_trace_store(struct mlt_table *t, const struct mlt_trace *src,
			    unsigned long call_site)
{
	struct mlt_trace *tr;
	unsigned long flags;
	u32 seq;

	/* Learning is optional: never wait for another CPU's. */
	if (!raw_spin_trylock_irqsave(&t->trace_lock, flags))
		return;
	tr = mlt_trace_victim(t, call_site);
	seq = tr->seq;
	WRITE_ONCE(tr->seq, seq + 1);
	smp_wmb();	/* odd seq before the fields change */
	WRITE_ONCE(tr->site, src->site);
	tr->sidx = src->sidx;
	tr->sseq = src->sseq;
	tr->nr = src->nr;
	tr->end = src->end;
	tr->regs_off = src->regs_off;
	tr->bp_in_reg = src->bp_in_reg;
	tr->bp_off = src->bp_off;
	memcpy(tr->off, src->off, src->nr * sizeof(src->off[0]));
	smp_wmb();	/* fields before the even seq */
	WRITE_ONCE(tr->seq, seq + 2);
	raw_spin_unlock_irqrestore(&t->trace_lock, flags);
}

/* ---- entry point ------------------------------------------------------ */

static unsigned long mlt_current_bp(void)
{
	unsigned long bp;

	asm volatile("mov %%rbp, %0" : "=r" (bp));
	return bp;
}

/*
 * Record the stack found by a complete walk; with slot, also learn the call
 * site's distance from it.
 */
static u32 mlt_stack_walked(struct mlt_table *t, unsigned long *buf,
			    unsigned long call_site, u64 *slot,
			    unsigned long anchor, u32 kind)
{
	unsigned int nr, start, kept;
	unsigned long sp;

	nr = mlt_walk_complete(buf, mlt_walk_max(t, kind), call_site, &sp);
	mlt_count(MLT_C_UNWIND_COMPLETE, 1);
	kept = mlt_kept(buf, nr, call_site, t->depth, &start);
	if (slot && sp > anchor && sp - anchor <= MLT_SITE_MAX_DIST &&
	    buf[start] == call_site)
		WRITE_ONCE(*slot, (u64)(u32)call_site << 32 | (u32)(sp - anchor));
	return mlt_record(t, buf + start, kept, kind);
}

/*
 * Stack record of the allocation made at call_site, MLT_NIL when the stack
 * table is full, MLT_SKIP when this module allocated. buf holds
 * MLT_BUF_FRAMES. noinline: the anchor's distance to the caller's frame
 * must be the same on every call from the same probe.
 */
noinline u32 mlt_stack_of(struct mlt_table *t, unsigned long *buf,
			  unsigned long call_site, u32 kind)
{
	unsigned long anchor_word = 0;
	unsigned long anchor = (unsigned long)&anchor_word;
	unsigned long bp = mlt_current_bp();
	u64 *slot = &mlt_sites[hash_long(call_site, MLT_SITE_BITS)];
	u64 entry = READ_ONCE(*slot);
	struct mlt_trace tr;
	unsigned long sp0, pushed;
	unsigned int nr;
	u32 sidx;

	if (!READ_ONCE(mlt_stack_cache) || !mlt_is_text_high(call_site))
		return mlt_stack_walked(t, buf, call_site, NULL, anchor, kind);
	if ((u32)(entry >> 32) != (u32)call_site)
		return mlt_stack_walked(t, buf, call_site, slot, anchor, kind);
	sp0 = anchor + (u32)entry;
	/* Fault-safe: a stale distance may point past the stack. */
	if (get_kernel_nofault(pushed, (unsigned long *)(sp0 - sizeof(long))) ||
	    pushed != call_site) {
		mlt_count(MLT_C_UNWIND_STALE, 1);
		return mlt_stack_walked(t, buf, call_site, slot, anchor, kind);
	}

	sidx = mlt_trace_find(t, call_site, sp0, bp, kind);
	if (sidx != MLT_NIL) {
		mlt_count(MLT_C_TRACE_HITS, 1);
		return sidx;
	}
	if (this_cpu_inc_return(mlt_trace_misses) % MLT_LEARN_EVERY == 1) {
		nr = mlt_trace_learn(buf, t->depth, call_site, sp0, anchor, &tr);
		/* Belt and braces: the kernel's own walk must agree. */
		if (nr && mlt_walk_confirms(buf, nr, tr.end != MLT_TRACE_DEPTH,
					    call_site)) {
			mlt_count(MLT_C_TRACE_LEARNT, 1);
			sidx = mlt_record(t, buf, nr, kind);
			if (sidx != MLT_NIL && sidx != MLT_SKIP) {
				tr.sidx = sidx;
				/* Pinned: seq is stable. */
				tr.sseq = READ_ONCE(mlt_stk(t, sidx)->seq);
				mlt_trace_store(t, &tr, call_site);
			}
			return sidx;
		}
	}
	return mlt_stack_walked(t, buf, call_site, NULL, anchor, kind);
}

NOKPROBE_SYMBOL(mlt_stack_of);

/*
 * A module being loaded may reuse the text of one unloaded before, with
 * other callers at the same addresses: forget the learnt distances. (Traces
 * need no such care: they are checked frame by frame.)
 */
static int mlt_module_event(struct notifier_block *nb, unsigned long action,
			    void *data)
{
	unsigned int i;

	if (action == MODULE_STATE_COMING)
		for (i = 0; i < ARRAY_SIZE(mlt_sites); i++)
			WRITE_ONCE(mlt_sites[i], 0);
	return NOTIFY_DONE;
}

static struct notifier_block mlt_module_nb = {
	.notifier_call = mlt_module_event,
};

int mlt_unwind_init(void)
{
	return register_module_notifier(&mlt_module_nb);
}

void mlt_unwind_exit(void)
{
	unregister_module_notifier(&mlt_module_nb);
}

#else /* !CONFIG_UNWINDER_ORC: frame pointers make the complete walk cheap */

size_t mlt_trace_mem(u32 traces)
{
	return 0;
}

size_t mlt_unwind_static_mem(void)
{
	return 0;
}

noinline u32 mlt_stack_of(struct mlt_table *t, unsigned long *buf,
			  unsigned long call_site, u32 kind)
{
	return mlt_stack_saved(t, buf, call_site, kind);
}

/* The kernel's walk; mlt_stack_own() cuts it where an interrupt came in. */
unsigned int mlt_walk_probe(unsigned long *buf, unsigned int max)
{
	mlt_count(MLT_C_UNWIND_COMPLETE, 1);
	return stack_trace_save(buf, max, 0);
}

int mlt_unwind_init(void)
{
	return 0;
}

void mlt_unwind_exit(void)
{
}

#endif
