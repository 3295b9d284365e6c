// SPDX-License-Identifier: GPL-2.0
/*
 * leaky: test module for mlt.ko: allocation patterns with distinctive
 * function names, driven through the write-only "run" parameter:
 *
 *   echo "leak N S"  > run   leak N kmallocs of S bytes (leaky_leak_kmalloc)
 *   echo "cache M"   > run   leak M objects of leaky_cache (leaky_leak_cache)
 *   echo "merged M"  > run   leak M objects of leaky_merge_b, which SLUB
 *                            merges with leaky_merge_a (or another cache of
 *                            its size) (leaky_leak_merged)
 *   echo "churn K"   > run   allocate K, then free them all (leaky_transient)
 *   echo "nullfree K" > run  kfree(NULL) and kfree(ZERO_SIZE_PTR) K times
 *                            each: frees of nothing
 *   echo "rcu R"     > run   allocate R, free with kfree_rcu (leaky_rcu_alloc)
 *   echo "bulk R"    > run   allocate R, free with kfree_bulk (leaky_bulk_alloc)
 *   echo "paths A B" > run   leak A + B kmallocs at one call site
 *                            (leaky_shared_alloc) reached through
 *                            leaky_path_a and leaky_path_b, interleaved
 *   echo "align N"   > run   leak 1 + 2N kmallocs at one call site
 *                            (leaky_helper_alloc), reached first from a
 *                            plain caller, then N times from a caller with
 *                            a stack-realigning local (leaky_aligned_caller)
 *                            in this system call and N times from a work item
 *   echo "fnptr N"   > run   leak 2N objects from one call site in
 *                            leaky_fnptr: an indirect call of wrappers that
 *                            tail-call kmalloc (216 bytes) and
 *                            kmem_cache_alloc (leaky_cache), alternating
 *   echo "branches N" > run  N transient stacks: allocate and free one
 *                            object (leaky_branch_alloc) through each of N
 *                            different chains of leaky_branch_a/_b calls
 *   echo "branchleak F N" > run  leak one object (leaky_branch_alloc) through
 *                            each of chains F .. F+N-1 (freed by freeall)
 *   echo "irq N"     > run   N allocations in hard IRQ (leaky_hardirq_alloc)
 *                            and N in softirq (leaky_softirq_alloc); kept
 *   echo irqfree     > run   free those in process context
 *   echo "storm MS"  > run   alloc/free storm on every CPU for MS ms (async)
 *   echo storm_wait  > run   wait for the storm to end
 *   echo "vmalloc N S" > run leak N vmalloc areas of S bytes
 *                            (leaky_leak_vmalloc)
 *   echo "kvmalloc N" > run  leak N kvmallocs of kvmalloc_size bytes, more
 *                            than kmalloc can give: they fall back to
 *                            vmalloc (leaky_leak_kvmalloc)
 *   echo "vchurn K"  > run   vmalloc and vfree K areas (leaky_vm_transient)
 *   echo "pages N O" > run   leak N allocations of 2^O pages
 *                            (leaky_leak_pages)
 *   echo "pchurn K"  > run   allocate and free K pages of order 0 and K of
 *                            order 2 (leaky_page_transient)
 *   echo "pcache N"  > run   leak N pages from the page cache's allocator
 *                            (__page_cache_alloc(GFP_USER), as a file
 *                            system's own readahead would; not to be
 *                            reported as pages) (leaky_leak_pagecache)
 *   echo "decoy N"   > run   x86_64: leak N pages from each of two
 *                            indirect calls whose bytes look like a direct
 *                            call to pagecache_get_page + 8 (mid-function:
 *                            to be reported as pages, leaky_decoy_mid) and
 *                            pagecache_get_page - 5 (where a call-depth
 *                            thunk would be, leaky_decoy_pad)
 *   echo "big M"     > run   leak M objects of leaky_big (2000 bytes,
 *                            order-3 slabs: new slab pages, which must not
 *                            be reported as pages) (leaky_leak_big)
 *   echo freeall     > run   free every leaked object
 *
 * Steady patterns, for end-to-end tests on a real kernel (runtime writable):
 *   steady_size, steady_ms   leak one kmalloc(steady_size) every steady_ms
 *                            ms in leaky_steady_leak (at most steady_max)
 *   churn_size, churn_ms     kmalloc + kfree one object every churn_ms ms
 *                            in leaky_churn
 *   steady_order             -1: the steady leak is kmalloc(steady_size);
 *                            0 to 3: alloc_pages(GFP_KERNEL, steady_order)
 *                            instead (memory in no meminfo counter)
 *   churn_order              the same for the churn (alloc_pages and
 *                            __free_pages)
 *
 * Locking: leaked objects are linked through their first bytes on two lists
 * under leaky_lock (irqsave); IRQ allocations go to fixed arrays written only
 * by their timer and read after the timer has stopped. Everything is freed
 * on unload (but the kmalloc leaks with leak_on_unload=1).
 */
#define pr_fmt(fmt) "leaky: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/hrtimer.h>
#include <linux/timer.h>
#include <linux/workqueue.h>
#include <linux/kthread.h>
#include <linux/delay.h>
#include <linux/completion.h>
#include <linux/jiffies.h>
#include <linux/percpu.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/rcupdate.h>

#define LEAKY_CACHE_NAME	"leaky_cache"
#define LEAKY_CACHE_OBJ		184	/* distinctive object size */
#define LEAKY_MERGE_OBJ		200	/* two mergeable caches of this size */
#define LEAKY_RCU_OBJ		96
#define LEAKY_SHARED_OBJ	168
#define LEAKY_HELPER_OBJ	200
#define LEAKY_ALIGN		64	/* more than the stack's: realigns */
#define LEAKY_BRANCH_OBJ	232
#define LEAKY_TAIL_OBJ		216
#define LEAKY_BRANCH_LEVELS	10	/* 2^10 distinct stacks */
#define LEAKY_HARDIRQ_OBJ	136
#define LEAKY_SOFTIRQ_OBJ	152
#define LEAKY_MAX_IRQ		64	/* objects per IRQ kind */
/*
 * PREEMPT_RT forbids kmalloc in hard IRQ context (the slab locks sleep):
 * there the "hard IRQ" allocation runs from a soft hrtimer instead.
 */
#ifdef CONFIG_PREEMPT_RT
#define LEAKY_HRTIMER_MODE	HRTIMER_MODE_REL_SOFT
#else
#define LEAKY_HRTIMER_MODE	HRTIMER_MODE_REL_HARD
#endif
#define LEAKY_IRQ_PERIOD_NS	(1000 * 1000)
#define LEAKY_STORM_BATCH	16
#define LEAKY_STORM_MIN		32
#define LEAKY_STORM_MAX		2048
#define LEAKY_IDLE_MS		100	/* steady thread poll when idle */
#define LEAKY_CMD_LEN		64

struct leaky_obj {
	struct list_head node;
};

struct leaky_rcu_obj {
	struct rcu_head rcu;
	char pad[LEAKY_RCU_OBJ - sizeof(struct rcu_head)];
};

static DEFINE_SPINLOCK(leaky_lock);
static LIST_HEAD(leaky_kmallocs);	/* kmalloc leaks */
static LIST_HEAD(leaky_cached);		/* leaky_cache leaks */
static struct kmem_cache *leaky_cachep;
static LIST_HEAD(leaky_merged);		/* leaky_merge_b leaks */
static struct kmem_cache *leaky_merge_a, *leaky_merge_b;

static unsigned int steady_size = 256;
module_param(steady_size, uint, 0644);
MODULE_PARM_DESC(steady_size, "Bytes per steady leak (>= 16)");
static unsigned int steady_ms;
module_param(steady_ms, uint, 0644);
MODULE_PARM_DESC(steady_ms, "Leak one object every this many ms (0: off)");
static unsigned int steady_max = 100000;
module_param(steady_max, uint, 0644);
MODULE_PARM_DESC(steady_max, "Stop steady leaking after this many objects");
static unsigned int churn_size = 128;
module_param(churn_size, uint, 0644);
MODULE_PARM_DESC(churn_size, "Bytes per churn allocation");
static unsigned int churn_ms;
module_param(churn_ms, uint, 0644);
MODULE_PARM_DESC(churn_ms, "Allocate and free one object every this many ms (0: off)");
static bool leak_on_unload;
module_param(leak_on_unload, bool, 0644);
MODULE_PARM_DESC(leak_on_unload, "Leave the kmalloc leaks allocated when unloaded");
static unsigned int steady_leaked;
module_param(steady_leaked, uint, 0444);
MODULE_PARM_DESC(steady_leaked, "Allocations leaked so far by leaky_steady_leak");

static int leaky_order_set(const char *val, const struct kernel_param *kp)
{
	int order, err;

	err = kstrtoint(val, 0, &order);
	if (err)
		return err;
	if (order < -1 || order > PAGE_ALLOC_COSTLY_ORDER)
		return -EINVAL;
	WRITE_ONCE(*(int *)kp->arg, order);
	return 0;
}

static const struct kernel_param_ops leaky_order_ops = {
	.set = leaky_order_set,
	.get = param_get_int,
};

static int steady_order = -1;
module_param_cb(steady_order, &leaky_order_ops, &steady_order, 0644);
MODULE_PARM_DESC(steady_order, "-1: steady leak by kmalloc; 0-3: by alloc_pages of this order");
static int churn_order = -1;
module_param_cb(churn_order, &leaky_order_ops, &churn_order, 0644);
MODULE_PARM_DESC(churn_order, "-1: churn by kmalloc; 0-3: by alloc_pages of this order");

static void leaky_keep(struct list_head *list, void *p)
{
	struct leaky_obj *o = p;
	unsigned long flags;

	spin_lock_irqsave(&leaky_lock, flags);
	list_add_tail(&o->node, list);
	spin_unlock_irqrestore(&leaky_lock, flags);
}

static noinline int leaky_leak_kmalloc(unsigned int n, size_t size)
{
	unsigned int i;
	void *p;

	for (i = 0; i < n; i++) {
		p = kmalloc(size, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		leaky_keep(&leaky_kmallocs, p);
	}
	return 0;
}

static noinline int leaky_leak_merged(unsigned int n)
{
	unsigned int i;
	void *p;

	for (i = 0; i < n; i++) {
		p = kmem_cache_alloc(leaky_merge_b, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		leaky_keep(&leaky_merged, p);
	}
	return 0;
}

static noinline int leaky_leak_cache(unsigned int n)
{
	unsigned int i;
	void *p;

	for (i = 0; i < n; i++) {
		p = kmem_cache_alloc(leaky_cachep, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		leaky_keep(&leaky_cached, p);
	}
	return 0;
}

/*
 * One call site, two stacks that differ two frames up: a stack cache keyed
 * by call site must still tell them apart.
 */
static noinline void *leaky_shared_alloc(void)
{
	void *p = kmalloc(LEAKY_SHARED_OBJ, GFP_KERNEL);

	barrier();	/* a real frame: no tail call into kmalloc */
	return p;
}

static noinline void *leaky_shared_mid(void)
{
	void *p = leaky_shared_alloc();

	barrier();
	return p;
}

/* The marks keep the compiler from folding the two paths into one. */
static noinline int leaky_path_a(void)
{
	char *p = leaky_shared_mid();

	if (!p)
		return -ENOMEM;
	p[sizeof(struct leaky_obj)] = 'a';
	leaky_keep(&leaky_kmallocs, p);
	return 0;
}

static noinline int leaky_path_b(void)
{
	char *p = leaky_shared_mid();

	if (!p)
		return -ENOMEM;
	p[sizeof(struct leaky_obj)] = 'b';
	leaky_keep(&leaky_kmallocs, p);
	return 0;
}

static noinline int leaky_paths(unsigned int a, unsigned int b)
{
	int err = 0;

	while (!err && (a || b)) {
		if (a && !err) {
			err = leaky_path_a();
			a--;
		}
		if (b && !err) {
			err = leaky_path_b();
			b--;
		}
	}
	return err;
}

static noinline int leaky_transient(unsigned int n)
{
	struct leaky_obj *o, *tmp;
	LIST_HEAD(list);
	unsigned int i;

	for (i = 0; i < n; i++) {
		o = kmalloc(64, GFP_KERNEL);
		if (!o)
			break;
		list_add(&o->node, &list);
	}
	list_for_each_entry_safe(o, tmp, &list, node)
		kfree(o);
	return 0;
}

static noinline int leaky_nullfree(unsigned int n)
{
	void *null = NULL, *zero = ZERO_SIZE_PTR;
	unsigned int i;

	for (i = 0; i < n; i++) {
		OPTIMIZER_HIDE_VAR(null);
		kfree(null);
		OPTIMIZER_HIDE_VAR(zero);
		kfree(zero);
	}
	return 0;
}

static noinline int leaky_rcu_alloc(unsigned int n)
{
	struct leaky_rcu_obj *o;
	unsigned int i;

	for (i = 0; i < n; i++) {
		o = kmalloc(sizeof(*o), GFP_KERNEL);
		if (!o)
			return -ENOMEM;
		kfree_rcu(o, rcu);
	}
	return 0;
}

/*
 * Frees through kmem_cache_free_bulk() itself, which fires no free
 * tracepoint: what kfree_rcu() does when it has a pointer-array page, but
 * every time (kfree_rcu() may also free one by one with kfree()).
 */
static noinline int leaky_bulk_alloc(unsigned int n)
{
	unsigned int i;
	void **p;
	int ret = 0;

	p = kcalloc(n, sizeof(*p), GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		p[i] = kmalloc(LEAKY_RCU_OBJ, GFP_KERNEL);
		if (!p[i]) {
			ret = -ENOMEM;
			break;
		}
	}
	kfree_bulk(i, p);
	kfree(p);
	return ret;
}

/*
 * A helper whose callers differ in how the unwinder gets past them: a
 * plain caller, and one with a local aligned beyond the stack's alignment,
 * which realigns its frame and finds its caller through %rbp.
 */
static noinline void *leaky_helper_alloc(void)
{
	void *p = kmalloc(LEAKY_HELPER_OBJ, GFP_KERNEL);

	barrier();
	return p;
}

static noinline void leaky_touch(char *buf)
{
	WRITE_ONCE(buf[0], 1);
}

static noinline int leaky_plain_caller(void)
{
	void *p = leaky_helper_alloc();

	if (!p)
		return -ENOMEM;
	leaky_keep(&leaky_kmallocs, p);
	return 0;
}

static noinline int leaky_aligned_caller(void)
{
	char buf[LEAKY_ALIGN] __aligned(LEAKY_ALIGN);
	void *p;

	leaky_touch(buf);
	p = leaky_helper_alloc();
	leaky_touch(buf);
	if (!p)
		return -ENOMEM;
	leaky_keep(&leaky_kmallocs, p);
	return 0;
}

static unsigned int leaky_align_n;

static void leaky_align_work_fn(struct work_struct *w)
{
	unsigned int i;

	for (i = 0; i < leaky_align_n; i++)
		if (leaky_aligned_caller())
			break;
}

static DECLARE_WORK(leaky_align_work, leaky_align_work_fn);

static noinline int leaky_align(unsigned int n)
{
	unsigned int i;
	int err;

	err = leaky_plain_caller();
	for (i = 0; !err && i < n; i++)
		err = leaky_aligned_caller();
	if (err)
		return err;
	leaky_align_n = n;
	schedule_work(&leaky_align_work);
	flush_work(&leaky_align_work);
	return 0;
}

/*
 * One call site, two allocators: the wrappers jump to them (tail calls),
 * so both return to the indirect call in leaky_fnptr, through different
 * allocator frames between the tracepoint and the call site.
 */
static noinline void *leaky_tail_kmalloc(void)
{
	return kmalloc(LEAKY_TAIL_OBJ, GFP_KERNEL);
}

static noinline void *leaky_tail_cache(void)
{
	return kmem_cache_alloc(leaky_cachep, GFP_KERNEL);
}

static void *(*leaky_tail_fns[2])(void) = {
	leaky_tail_kmalloc, leaky_tail_cache
};

static noinline int leaky_fnptr(unsigned int n)
{
	void *(*fn)(void);
	unsigned int i;
	void *p;

	for (i = 0; i < 2 * n; i++) {
		fn = READ_ONCE(leaky_tail_fns[i & 1]);
		p = fn();
		if (!p)
			return -ENOMEM;
		leaky_keep(i & 1 ? &leaky_cached : &leaky_kmallocs, p);
	}
	return 0;
}

/*
 * Distinct stacks: path bit i chooses leaky_branch_a or _b at level i, one
 * frame per level. The counters keep the two from being folded into one
 * and the calls from being tail calls.
 */
static unsigned long leaky_branch_hits[2];

static noinline void *leaky_branch_alloc(void)
{
	void *p = kmalloc(LEAKY_BRANCH_OBJ, GFP_KERNEL);

	barrier();
	return p;
}

static noinline void *leaky_branch_b(unsigned int path, unsigned int level);

static noinline void *leaky_branch_a(unsigned int path, unsigned int level)
{
	void *p;

	if (!level)
		p = leaky_branch_alloc();
	else if (path & 1)
		p = leaky_branch_a(path >> 1, level - 1);
	else
		p = leaky_branch_b(path >> 1, level - 1);
	WRITE_ONCE(leaky_branch_hits[0], leaky_branch_hits[0] + 1);
	return p;
}

static noinline void *leaky_branch_b(unsigned int path, unsigned int level)
{
	void *p;

	if (!level)
		p = leaky_branch_alloc();
	else if (path & 1)
		p = leaky_branch_a(path >> 1, level - 1);
	else
		p = leaky_branch_b(path >> 1, level - 1);
	WRITE_ONCE(leaky_branch_hits[1], leaky_branch_hits[1] + 1);
	return p;
}

static noinline int leaky_branches(unsigned int n)
{
	unsigned int i;

	if (n > 1U << LEAKY_BRANCH_LEVELS)
		return -EINVAL;
	for (i = 0; i < n; i++)
		kfree(leaky_branch_a(i, LEAKY_BRANCH_LEVELS));
	return 0;
}

/* Leak one object through each of chains first .. first + n - 1. */
static noinline int leaky_branch_leaks(unsigned int first, unsigned int n)
{
	unsigned int i;
	void *p;

	if (first > 1U << LEAKY_BRANCH_LEVELS || n > (1U << LEAKY_BRANCH_LEVELS) - first)
		return -EINVAL;
	for (i = first; i < first + n; i++) {
		p = leaky_branch_a(i, LEAKY_BRANCH_LEVELS);
		if (!p)
			return -ENOMEM;
		leaky_keep(&leaky_kmallocs, p);
	}
	return 0;
}

/* ---- IRQ context ---------------------------------------------------------- */

static void *leaky_hard_objs[LEAKY_MAX_IRQ], *leaky_soft_objs[LEAKY_MAX_IRQ];
static unsigned int leaky_irq_want, leaky_hard_n, leaky_soft_n;
static struct hrtimer leaky_hrtimer;
static struct timer_list leaky_timer;
static DECLARE_COMPLETION(leaky_hard_done);
static DECLARE_COMPLETION(leaky_soft_done);

static noinline void leaky_hardirq_alloc(void)
{
	leaky_hard_objs[leaky_hard_n++] = kmalloc(LEAKY_HARDIRQ_OBJ, GFP_ATOMIC);
}

static enum hrtimer_restart leaky_hrtimer_fn(struct hrtimer *t)
{
	leaky_hardirq_alloc();
	if (leaky_hard_n < leaky_irq_want) {
		hrtimer_forward_now(t, ns_to_ktime(LEAKY_IRQ_PERIOD_NS));
		return HRTIMER_RESTART;
	}
	complete(&leaky_hard_done);
	return HRTIMER_NORESTART;
}

static noinline void leaky_softirq_alloc(void)
{
	leaky_soft_objs[leaky_soft_n++] = kmalloc(LEAKY_SOFTIRQ_OBJ, GFP_ATOMIC);
}

static void leaky_timer_fn(struct timer_list *t)
{
	leaky_softirq_alloc();
	if (leaky_soft_n < leaky_irq_want)
		mod_timer(t, jiffies + 1);
	else
		complete(&leaky_soft_done);
}

static noinline void leaky_irq_free(void)
{
	unsigned int i;

	for (i = 0; i < leaky_hard_n; i++)
		kfree(leaky_hard_objs[i]);
	for (i = 0; i < leaky_soft_n; i++)
		kfree(leaky_soft_objs[i]);
	leaky_hard_n = 0;
	leaky_soft_n = 0;
}

static int leaky_irq(unsigned int n)
{
	if (!n || n > LEAKY_MAX_IRQ)
		return -EINVAL;
	hrtimer_cancel(&leaky_hrtimer);
	del_timer_sync(&leaky_timer);
	leaky_irq_free();
	leaky_irq_want = n;
	reinit_completion(&leaky_hard_done);
	reinit_completion(&leaky_soft_done);
	hrtimer_start(&leaky_hrtimer, ns_to_ktime(LEAKY_IRQ_PERIOD_NS),
		      LEAKY_HRTIMER_MODE);
	mod_timer(&leaky_timer, jiffies + 1);
	wait_for_completion(&leaky_hard_done);
	wait_for_completion(&leaky_soft_done);
	return 0;
}

/* ---- storm ------------------------------------------------------------------ */

static DEFINE_PER_CPU(struct work_struct, leaky_storm_work);
static unsigned long leaky_storm_end;

static noinline void leaky_storm_alloc(unsigned int *seed)
{
	void *p[LEAKY_STORM_BATCH];
	unsigned int i, size;

	for (i = 0; i < LEAKY_STORM_BATCH; i++) {
		*seed = *seed * 1103515245 + 12345;
		size = LEAKY_STORM_MIN + (*seed >> 8) % (LEAKY_STORM_MAX - LEAKY_STORM_MIN);
		p[i] = kmalloc(size, GFP_KERNEL);
	}
	for (i = 0; i < LEAKY_STORM_BATCH; i++)
		kfree(p[i]);
}

static void leaky_storm_fn(struct work_struct *w)
{
	unsigned int seed = smp_processor_id() + 1;

	while (time_before(jiffies, READ_ONCE(leaky_storm_end))) {
		leaky_storm_alloc(&seed);
		cond_resched();
	}
}

static int leaky_storm(unsigned int ms)
{
	int cpu;

	WRITE_ONCE(leaky_storm_end, jiffies + msecs_to_jiffies(ms));
	for_each_online_cpu(cpu)
		schedule_work_on(cpu, per_cpu_ptr(&leaky_storm_work, cpu));
	return 0;
}

static void leaky_storm_wait(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		flush_work(per_cpu_ptr(&leaky_storm_work, cpu));
}

/* ---- steady leak and churn ------------------------------------------------------ */

static struct task_struct *leaky_thread;

/* A steady page leak, linked through its first bytes (lowmem: GFP_KERNEL). */
struct leaky_page_obj {
	struct list_head node;
	int order;
};

static LIST_HEAD(leaky_steady_pages);

static noinline void leaky_steady_leak(void)
{
	int order = READ_ONCE(steady_order);
	struct leaky_page_obj *pg;
	struct page *page;
	void *p;

	if (order >= 0) {
		page = alloc_pages(GFP_KERNEL, order);
		if (!page)
			return;
		pg = page_address(page);
		pg->order = order;
		leaky_keep(&leaky_steady_pages, pg);
		steady_leaked++;
		return;
	}
	p = kmalloc(max_t(unsigned int, READ_ONCE(steady_size),
			  sizeof(struct leaky_obj)), GFP_KERNEL);
	if (p) {
		leaky_keep(&leaky_kmallocs, p);
		steady_leaked++;
	}
}

static noinline void leaky_churn(void)
{
	int order = READ_ONCE(churn_order);
	struct page *page;
	void *p;

	if (order >= 0) {
		page = alloc_pages(GFP_KERNEL, order);
		if (page)
			__free_pages(page, order);
		return;
	}
	p = kmalloc(max_t(unsigned int, READ_ONCE(churn_size), 1), GFP_KERNEL);
	kfree(p);
}

static void leaky_free_steady_pages(void)
{
	struct leaky_page_obj *pg;
	unsigned long flags;

	for (;;) {
		spin_lock_irqsave(&leaky_lock, flags);
		pg = list_first_entry_or_null(&leaky_steady_pages,
					      struct leaky_page_obj, node);
		if (pg)
			list_del(&pg->node);
		spin_unlock_irqrestore(&leaky_lock, flags);
		if (!pg)
			break;
		free_pages((unsigned long)pg, pg->order);
	}
}

static int leaky_steady_fn(void *unused)
{
	unsigned long next_leak = jiffies, next_churn = jiffies, wait;
	unsigned int lms, cms;

	while (!kthread_should_stop()) {
		lms = READ_ONCE(steady_ms);
		cms = READ_ONCE(churn_ms);
		wait = msecs_to_jiffies(LEAKY_IDLE_MS);
		if (lms && steady_leaked < READ_ONCE(steady_max)) {
			if (time_after_eq(jiffies, next_leak)) {
				leaky_steady_leak();
				next_leak = jiffies + msecs_to_jiffies(lms);
			}
			wait = min(wait, next_leak - jiffies);
		}
		if (cms) {
			if (time_after_eq(jiffies, next_churn)) {
				leaky_churn();
				next_churn = jiffies + msecs_to_jiffies(cms);
			}
			wait = min(wait, next_churn - jiffies);
		}
		schedule_timeout_interruptible(max(wait, 1UL));
	}
	return 0;
}

/* ---- vmalloc ------------------------------------------------------------------ */

#define LEAKY_VM_MAX	256	/* vmalloc'd areas kept at once */
static void *leaky_vm[LEAKY_VM_MAX];	/* under leaky_lock */
static unsigned int leaky_vm_nr;

/* kvmalloc's kmalloc cannot give this: it falls back to vmalloc. */
static unsigned long kvmalloc_size = KMALLOC_MAX_SIZE + PAGE_SIZE;
module_param(kvmalloc_size, ulong, 0444);
MODULE_PARM_DESC(kvmalloc_size, "Bytes of each kvmalloc leak (beyond kmalloc's largest)");

static int leaky_vm_keep(void *p)
{
	unsigned long flags;
	int err = 0;

	spin_lock_irqsave(&leaky_lock, flags);
	if (leaky_vm_nr < LEAKY_VM_MAX)
		leaky_vm[leaky_vm_nr++] = p;
	else
		err = -ENOSPC;
	spin_unlock_irqrestore(&leaky_lock, flags);
	if (err)
		kvfree(p);
	return err;
}

static noinline int leaky_leak_vmalloc(unsigned int n, size_t size)
{
	unsigned int i;
	void *p;
	int err;

	for (i = 0; i < n; i++) {
		p = vmalloc(size);
		if (!p)
			return -ENOMEM;
		err = leaky_vm_keep(p);
		if (err)
			return err;
	}
	return 0;
}

static noinline int leaky_leak_kvmalloc(unsigned int n)
{
	unsigned int i;
	void *p;
	int err;

	for (i = 0; i < n; i++) {
		p = kvmalloc(kvmalloc_size, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		if (!is_vmalloc_addr(p)) {
			kvfree(p);
			return -EINVAL;	/* no fallback: the test is void */
		}
		err = leaky_vm_keep(p);
		if (err)
			return err;
	}
	return 0;
}

static noinline int leaky_vm_transient(unsigned int n)
{
	unsigned int i;
	void *p;

	for (i = 0; i < n; i++) {
		p = vmalloc(2 * PAGE_SIZE);
		if (!p)
			return -ENOMEM;
		barrier();
		vfree(p);
	}
	return 0;
}

static void leaky_vm_free(void)
{
	unsigned long flags;
	void *p;

	for (;;) {
		spin_lock_irqsave(&leaky_lock, flags);
		p = leaky_vm_nr ? leaky_vm[--leaky_vm_nr] : NULL;
		spin_unlock_irqrestore(&leaky_lock, flags);
		if (!p)
			break;
		kvfree(p);
	}
}

/* ---- pages ---------------------------------------------------------------- */

#define LEAKY_PAGES_MAX	4096	/* page allocations kept at once */
#define LEAKY_BIG_OBJ	2000	/* order-3 slabs on SLUB */

struct leaky_pages {
	struct page *page;
	unsigned int order;
};

static struct leaky_pages leaky_pg[LEAKY_PAGES_MAX];	/* under leaky_lock */
static unsigned int leaky_pg_nr;
static LIST_HEAD(leaky_bigs);		/* leaky_big leaks */
static struct kmem_cache *leaky_bigp;

/* Keep page (2^order pages) until freeall; freed at once if no room. */
static int leaky_keep_page(struct page *page, unsigned int order)
{
	unsigned long flags;
	int err = 0;

	spin_lock_irqsave(&leaky_lock, flags);
	if (leaky_pg_nr < LEAKY_PAGES_MAX) {
		leaky_pg[leaky_pg_nr].page = page;
		leaky_pg[leaky_pg_nr++].order = order;
	} else {
		err = -ENOSPC;
	}
	spin_unlock_irqrestore(&leaky_lock, flags);
	if (err)
		__free_pages(page, order);
	return err;
}

static noinline int leaky_leak_pages(unsigned int n, unsigned int order)
{
	struct page *page;
	unsigned int i;
	int err = 0;

	if (order > 3)
		return -EINVAL;
	for (i = 0; i < n && !err; i++) {
		page = alloc_pages(GFP_KERNEL, order);
		if (!page)
			return -ENOMEM;
		err = leaky_keep_page(page, order);
	}
	return err;
}

/*
 * Pages from the page cache's allocator, called from outside mm/ as a file
 * system does (a GFP_USER mapping: not movable), kept. They are page
 * cache, not kernel memory: mlt must not report them as pages.
 */
static noinline int leaky_leak_pagecache(unsigned int n)
{
	struct page *page;
	unsigned int i;
	int err = 0;

	for (i = 0; i < n && !err; i++) {
		/* 5.10: a function; 5.16+: filemap_alloc_folio(), inline. */
		page = __page_cache_alloc(GFP_USER);
		if (!page)
			return -ENOMEM;
		err = leaky_keep_page(page, 0);
	}
	return err;
}

#ifdef CONFIG_X86_64
#include <asm/nospec-branch.h>

/* 6.10+: __get_free_pages() is a macro around get_free_pages_noprof(). */
#ifdef __get_free_pages
#define LEAKY_GFP_FN	get_free_pages_noprof
#else
#define LEAKY_GFP_FN	__get_free_pages
#endif

static unsigned long (*leaky_gfp_fn)(gfp_t gfp, unsigned int order) = LEAKY_GFP_FN;

/*
 * One order-0 page from the page allocator (through leaky_gfp_fn) by
 * "call *disp32(%rax,%r13,8)" with %r13 = 0, whose last five bytes, SIB
 * byte 0xe8 and disp32, read as a direct call ("call rel32") to
 * pagecache_get_page + off: disp32 is that address less the return
 * address, and %rax is set so that the call reads leaky_gfp_fn. An
 * indirect call whose bytes look like a call into the page cache: mlt may
 * take its decoded target only where it is a function's entry.
 */
#define LEAKY_DECOY_CALL(off)						\
	"movslq 1f - 4(%%rip), %%rcx\n\t"				\
	"sub %%rcx, %%rax\n\t"						\
	"xor %%r13d, %%r13d\n\t"					\
	ANNOTATE_RETPOLINE_SAFE						\
	".byte 0x42, 0xff, 0x94, 0xe8\n\t"				\
	".long %c[decoy] + (" off ") - 1f\n"				\
	"1:\n\t"

#define LEAKY_DECOY_ARGS						\
	: "+a" (ret), "+D" (gfp), "+S" (order), ASM_CALL_CONSTRAINT	\
	: [decoy] "i" (pagecache_get_page)				\
	: "rcx", "rdx", "r8", "r9", "r10", "r11", "r13", "memory", "cc"

/* The decoded target lies inside pagecache_get_page: no entry. */
static noinline unsigned long leaky_decoy_mid(void)
{
	unsigned long ret = (unsigned long)&leaky_gfp_fn;
	unsigned long gfp = (__force unsigned int)GFP_KERNEL, order = 0;

	asm volatile(LEAKY_DECOY_CALL("8") LEAKY_DECOY_ARGS);
	return ret;
}

/*
 * The decoded target lies 5 bytes before pagecache_get_page: where call
 * depth tracking (CONFIG_CALL_THUNKS) puts a direct call's destination.
 */
static noinline unsigned long leaky_decoy_pad(void)
{
	unsigned long ret = (unsigned long)&leaky_gfp_fn;
	unsigned long gfp = (__force unsigned int)GFP_KERNEL, order = 0;

	asm volatile(LEAKY_DECOY_CALL("-5") LEAKY_DECOY_ARGS);
	return ret;
}

/* Leak n pages through each decoy call site. */
static noinline int leaky_decoys(unsigned int n)
{
	unsigned long addr;
	unsigned int i, k;
	int err = 0;

	for (i = 0; i < n && !err; i++) {
		for (k = 0; k < 2 && !err; k++) {
			addr = k ? leaky_decoy_pad() : leaky_decoy_mid();
			if (!addr)
				return -ENOMEM;
			err = leaky_keep_page(virt_to_page((void *)addr), 0);
		}
	}
	return err;
}
#else
static int leaky_decoys(unsigned int n)
{
	return -EOPNOTSUPP;
}
#endif

static bool call_thunks = IS_ENABLED(CONFIG_CALL_THUNKS);
module_param(call_thunks, bool, 0444);
MODULE_PARM_DESC(call_thunks, "Built with CONFIG_CALL_THUNKS (direct calls may land before a function)");

static noinline int leaky_page_transient(unsigned int n)
{
	struct page *a, *b;
	unsigned int i;

	for (i = 0; i < n; i++) {
		a = alloc_pages(GFP_KERNEL, 0);
		b = alloc_pages(GFP_KERNEL, 2);
		if (a)
			__free_pages(a, 0);
		if (b)
			__free_pages(b, 2);
		if (!a || !b)
			return -ENOMEM;
	}
	return 0;
}

static noinline int leaky_leak_big(unsigned int n)
{
	unsigned int i;
	void *p;

	for (i = 0; i < n; i++) {
		p = kmem_cache_alloc(leaky_bigp, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		leaky_keep(&leaky_bigs, p);
	}
	return 0;
}

static void leaky_pages_free(void)
{
	struct leaky_pages pg;
	unsigned long flags;

	for (;;) {
		spin_lock_irqsave(&leaky_lock, flags);
		pg.page = NULL;
		if (leaky_pg_nr)
			pg = leaky_pg[--leaky_pg_nr];
		spin_unlock_irqrestore(&leaky_lock, flags);
		if (!pg.page)
			break;
		__free_pages(pg.page, pg.order);
	}
}

/* ---- commands ---------------------------------------------------------------- */

static void leaky_free_list(struct list_head *list, struct kmem_cache *cache)
{
	struct leaky_obj *o;
	unsigned long flags;

	for (;;) {
		spin_lock_irqsave(&leaky_lock, flags);
		o = list_first_entry_or_null(list, struct leaky_obj, node);
		if (o)
			list_del(&o->node);
		spin_unlock_irqrestore(&leaky_lock, flags);
		if (!o)
			break;
		if (cache)
			kmem_cache_free(cache, o);
		else
			kfree(o);
	}
}

static int leaky_run_set(const char *val, const struct kernel_param *kp)
{
	char cmd[LEAKY_CMD_LEN];
	unsigned int a = 0, b = 0;
	int n;

	n = sscanf(val, "%63s %u %u", cmd, &a, &b);
	if (n < 1)
		return -EINVAL;
	if (!strcmp(cmd, "leak") && n == 3 && b >= sizeof(struct leaky_obj))
		return leaky_leak_kmalloc(a, b);
	if (!strcmp(cmd, "cache") && n == 2)
		return leaky_leak_cache(a);
	if (!strcmp(cmd, "merged") && n == 2)
		return leaky_leak_merged(a);
	if (!strcmp(cmd, "churn") && n == 2)
		return leaky_transient(a);
	if (!strcmp(cmd, "nullfree") && n == 2)
		return leaky_nullfree(a);
	if (!strcmp(cmd, "rcu") && n == 2)
		return leaky_rcu_alloc(a);
	if (!strcmp(cmd, "bulk") && n == 2)
		return leaky_bulk_alloc(a);
	if (!strcmp(cmd, "paths") && n == 3)
		return leaky_paths(a, b);
	if (!strcmp(cmd, "align") && n == 2)
		return leaky_align(a);
	if (!strcmp(cmd, "fnptr") && n == 2)
		return leaky_fnptr(a);
	if (!strcmp(cmd, "branches") && n == 2)
		return leaky_branches(a);
	if (!strcmp(cmd, "branchleak") && n == 3)
		return leaky_branch_leaks(a, b);
	if (!strcmp(cmd, "irq") && n == 2)
		return leaky_irq(a);
	if (!strcmp(cmd, "irqfree")) {
		leaky_irq_free();
		return 0;
	}
	if (!strcmp(cmd, "storm") && n == 2)
		return leaky_storm(a);
	if (!strcmp(cmd, "storm_wait")) {
		leaky_storm_wait();
		return 0;
	}
	if (!strcmp(cmd, "vmalloc") && n == 3 && b)
		return leaky_leak_vmalloc(a, b);
	if (!strcmp(cmd, "kvmalloc") && n == 2)
		return leaky_leak_kvmalloc(a);
	if (!strcmp(cmd, "vchurn") && n == 2)
		return leaky_vm_transient(a);
	if (!strcmp(cmd, "pages") && n == 3)
		return leaky_leak_pages(a, b);
	if (!strcmp(cmd, "pchurn") && n == 2)
		return leaky_page_transient(a);
	if (!strcmp(cmd, "pcache") && n == 2)
		return leaky_leak_pagecache(a);
	if (!strcmp(cmd, "decoy") && n == 2)
		return leaky_decoys(a);
	if (!strcmp(cmd, "big") && n == 2)
		return leaky_leak_big(a);
	if (!strcmp(cmd, "freeall")) {
		leaky_pages_free();
		leaky_free_list(&leaky_bigs, leaky_bigp);
		leaky_vm_free();
		leaky_free_list(&leaky_kmallocs, NULL);
		leaky_free_list(&leaky_cached, leaky_cachep);
		leaky_free_list(&leaky_merged, leaky_merge_b);
		leaky_free_steady_pages();
		return 0;
	}
	return -EINVAL;
}

static const struct kernel_param_ops leaky_run_ops = {
	.set = leaky_run_set,
};
module_param_cb(run, &leaky_run_ops, NULL, 0200);
MODULE_PARM_DESC(run, "Command: leak N S | cache M | merged M | churn K | rcu R | bulk R | paths A B | align N | fnptr N | branches N | branchleak F N | irq N | irqfree | storm MS | storm_wait | vmalloc N S | kvmalloc N | vchurn K | pages N O | pchurn K | pcache N | decoy N | big M | freeall");

static void leaky_ctor(void *p)
{
	memset(p, 0, LEAKY_CACHE_OBJ);
}

static int __init leaky_init(void)
{
	int cpu;

	/* A constructor keeps SLUB from merging this cache with another. */
	leaky_cachep = kmem_cache_create(LEAKY_CACHE_NAME, LEAKY_CACHE_OBJ, 0, 0,
					 leaky_ctor);
	if (!leaky_cachep)
		return -ENOMEM;
	/* No constructor, no flags: SLUB merges these (unless slub_nomerge). */
	leaky_merge_a = kmem_cache_create("leaky_merge_a", LEAKY_MERGE_OBJ, 0, 0, NULL);
	leaky_merge_b = kmem_cache_create("leaky_merge_b", LEAKY_MERGE_OBJ, 0, 0, NULL);
	/* A constructor: not merged, so its slabs are its own. */
	leaky_bigp = kmem_cache_create("leaky_big", LEAKY_BIG_OBJ, 0, 0, leaky_ctor);
	if (!leaky_merge_a || !leaky_merge_b || !leaky_bigp) {
		kmem_cache_destroy(leaky_bigp);
		kmem_cache_destroy(leaky_merge_b);
		kmem_cache_destroy(leaky_merge_a);
		kmem_cache_destroy(leaky_cachep);
		return -ENOMEM;
	}
	hrtimer_init(&leaky_hrtimer, CLOCK_MONOTONIC, LEAKY_HRTIMER_MODE);
	leaky_hrtimer.function = leaky_hrtimer_fn;
	timer_setup(&leaky_timer, leaky_timer_fn, 0);
	for_each_possible_cpu(cpu)
		INIT_WORK(per_cpu_ptr(&leaky_storm_work, cpu), leaky_storm_fn);
	leaky_thread = kthread_run(leaky_steady_fn, NULL, "leaky_steady");
	if (IS_ERR(leaky_thread)) {
		kmem_cache_destroy(leaky_bigp);
		kmem_cache_destroy(leaky_merge_b);
		kmem_cache_destroy(leaky_merge_a);
		kmem_cache_destroy(leaky_cachep);
		return PTR_ERR(leaky_thread);
	}
	return 0;
}

static void __exit leaky_exit(void)
{
	kthread_stop(leaky_thread);
	hrtimer_cancel(&leaky_hrtimer);
	del_timer_sync(&leaky_timer);
	WRITE_ONCE(leaky_storm_end, jiffies);
	leaky_storm_wait();
	leaky_irq_free();
	leaky_vm_free();
	leaky_pages_free();
	leaky_free_list(&leaky_bigs, leaky_bigp);
	if (!leak_on_unload)
		leaky_free_list(&leaky_kmallocs, NULL);
	leaky_free_list(&leaky_cached, leaky_cachep);
	leaky_free_list(&leaky_merged, leaky_merge_b);
	leaky_free_steady_pages();
	rcu_barrier();
	kmem_cache_destroy(leaky_bigp);
	kmem_cache_destroy(leaky_merge_b);
	kmem_cache_destroy(leaky_merge_a);
	kmem_cache_destroy(leaky_cachep);
}

module_init(leaky_init);
module_exit(leaky_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Allocation patterns for testing mlt.ko");
