// SPDX-License-Identifier: GPL-2.0
/*
 * mlt_bench: kmalloc(64) + kfree, or alloc_pages + __free_pages,
 * microbenchmark for mlt.ko.
 *
 *   echo N > /sys/module/mlt_bench/parameters/run   time N alloc+free pairs
 *   cat /sys/module/mlt_bench/parameters/result_ps  picoseconds per pair
 *   echo 1 > /sys/module/mlt_bench/parameters/count_probe
 *   echo S > /sys/module/mlt_bench/parameters/stacks  allocate from S stacks
 *   echo O > /sys/module/mlt_bench/parameters/page_order  pages of order O
 *                                          (-1, the default: kmalloc(64))
 *
 * count_probe attaches the cheapest possible tracepoint tracker to kmalloc
 * and kfree, and to mm_page_alloc and mm_page_free (not exported: found
 * with for_each_kernel_tracepoint(), as mlt.ko finds them): a probe that
 * only increments a per-CPU counter. It is the floor that any
 * tracepoint-based tracker (mlt.ko included) pays.
 *
 * stacks (default 1) makes pair i allocate i % S frames deeper through a
 * recursive helper: S distinct stacks from one call site, the worst case
 * for a tracker that caches stacks per call site. The loop itself costs a
 * little more then, so compare S-stack runs with each other only.
 *
 * Locking and contexts: parameters are written from process context and
 * serialised by the module parameter lock; the probes only touch their own
 * CPU's counter with this_cpu_inc() (preemption is disabled in tracepoint
 * probes). The loop runs in the context of the writing process.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/percpu.h>
#include <linux/tracepoint.h>
#include <linux/version.h>
#include <trace/events/kmem.h>

#define MLTB_SIZE	64	/* bytes per allocation, as in the targets */
#define MLTB_MAX_OPS	100000000

static DEFINE_PER_CPU(unsigned long, mltb_events);
static unsigned long result_ps;
module_param(result_ps, ulong, 0444);
MODULE_PARM_DESC(result_ps, "Picoseconds per alloc+free pair of the last run");

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
static void mltb_tp_kmalloc(void *data, unsigned long call_site, const void *ptr,
			    size_t req, size_t alloc, gfp_t gfp, int node)
#else
static void mltb_tp_kmalloc(void *data, unsigned long call_site, const void *ptr,
			    size_t req, size_t alloc, gfp_t gfp)
#endif
{
	this_cpu_inc(mltb_events);
}

static void mltb_tp_kfree(void *data, unsigned long call_site, const void *ptr)
{
	this_cpu_inc(mltb_events);
}

static void mltb_tp_page_alloc(void *data, struct page *page, unsigned int order,
			       gfp_t gfp, int migratetype)
{
	this_cpu_inc(mltb_events);
}

static void mltb_tp_page_free(void *data, struct page *page, unsigned int order)
{
	this_cpu_inc(mltb_events);
}

static struct tracepoint *mltb_tp_palloc, *mltb_tp_pfree;

static void mltb_find_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "mm_page_alloc"))
		mltb_tp_palloc = tp;
	else if (!strcmp(tp->name, "mm_page_free"))
		mltb_tp_pfree = tp;
}

static int mltb_page_probes(bool on)
{
	int err;

	check_trace_callback_type_mm_page_alloc(mltb_tp_page_alloc);
	check_trace_callback_type_mm_page_free(mltb_tp_page_free);
	if (!on) {
		tracepoint_probe_unregister(mltb_tp_palloc, mltb_tp_page_alloc, NULL);
		tracepoint_probe_unregister(mltb_tp_pfree, mltb_tp_page_free, NULL);
		return 0;
	}
	if (!mltb_tp_palloc || !mltb_tp_pfree)
		for_each_kernel_tracepoint(mltb_find_tp, NULL);
	if (!mltb_tp_palloc || !mltb_tp_pfree)
		return -ENOENT;
	err = tracepoint_probe_register(mltb_tp_pfree, mltb_tp_page_free, NULL);
	if (err)
		return err;
	err = tracepoint_probe_register(mltb_tp_palloc, mltb_tp_page_alloc, NULL);
	if (err)
		tracepoint_probe_unregister(mltb_tp_pfree, mltb_tp_page_free, NULL);
	return err;
}

static bool mltb_counting;

static int mltb_count_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int err = kstrtobool(val, &on);

	if (err || on == mltb_counting)
		return err;
	if (on) {
		err = register_trace_kfree(mltb_tp_kfree, NULL);
		if (err)
			return err;
		err = register_trace_kmalloc(mltb_tp_kmalloc, NULL);
		if (!err) {
			err = mltb_page_probes(true);
			if (err)
				unregister_trace_kmalloc(mltb_tp_kmalloc, NULL);
		}
		if (err) {
			unregister_trace_kfree(mltb_tp_kfree, NULL);
			tracepoint_synchronize_unregister();
			return err;
		}
	} else {
		mltb_page_probes(false);
		unregister_trace_kmalloc(mltb_tp_kmalloc, NULL);
		unregister_trace_kfree(mltb_tp_kfree, NULL);
		tracepoint_synchronize_unregister();
	}
	mltb_counting = on;
	return 0;
}

static int mltb_count_get(char *buf, const struct kernel_param *kp)
{
	return sprintf(buf, "%d\n", mltb_counting);
}

static const struct kernel_param_ops mltb_count_ops = {
	.set = mltb_count_set,
	.get = mltb_count_get,
};
module_param_cb(count_probe, &mltb_count_ops, NULL, 0644);
MODULE_PARM_DESC(count_probe, "Attach the counting-only probe to kmalloc, kfree, mm_page_alloc and mm_page_free");

static unsigned int stacks = 1;
module_param(stacks, uint, 0644);
MODULE_PARM_DESC(stacks, "Distinct stacks the loop allocates from (1..64)");

static int page_order = -1;
module_param(page_order, int, 0644);
MODULE_PARM_DESC(page_order, "Time alloc_pages(GFP_KERNEL, page_order) + __free_pages (-1: kmalloc(64) + kfree)");

static noinline void mltb_page_loop(unsigned int n, unsigned int order)
{
	struct page *p;
	unsigned int i;

	for (i = 0; i < n; i++) {
		p = alloc_pages(GFP_KERNEL, order);
		OPTIMIZER_HIDE_VAR(p);
		if (p)
			__free_pages(p, order);
	}
}

/* kmalloc at the same call site, depth frames below the caller. */
static noinline void *mltb_alloc_below(unsigned int depth)
{
	void *p;

	if (depth)
		p = mltb_alloc_below(depth - 1);
	else
		p = kmalloc(MLTB_SIZE, GFP_KERNEL);
	OPTIMIZER_HIDE_VAR(p);	/* not a tail call: one frame per level */
	return p;
}

static noinline void mltb_loop(unsigned int n)
{
	unsigned int i, s = clamp(READ_ONCE(stacks), 1U, 64U);
	void *p;

	for (i = 0; i < n; i++) {
		if (s == 1)
			p = kmalloc(MLTB_SIZE, GFP_KERNEL);
		else
			p = mltb_alloc_below(i % s);
		OPTIMIZER_HIDE_VAR(p);
		kfree(p);
	}
}

static int mltb_run_set(const char *val, const struct kernel_param *kp)
{
	unsigned int n;
	u64 t0, dt;
	int err = kstrtouint(val, 0, &n);

	if (err)
		return err;
	if (!n || n > MLTB_MAX_OPS)
		return -ERANGE;
	t0 = ktime_get_ns();
	if (READ_ONCE(page_order) >= 0)
		mltb_page_loop(n, min(READ_ONCE(page_order), 3));
	else
		mltb_loop(n);
	dt = ktime_get_ns() - t0;
	result_ps = div_u64(dt * 1000, n);
	return 0;
}

static const struct kernel_param_ops mltb_run_ops = {
	.set = mltb_run_set,
};
module_param_cb(run, &mltb_run_ops, NULL, 0200);
MODULE_PARM_DESC(run, "Time this many alloc+free pairs");

static void __exit mltb_exit(void)
{
	if (mltb_counting)
		mltb_count_set("0", NULL);
}

static int __init mltb_init(void)
{
	return 0;
}

module_init(mltb_init);
module_exit(mltb_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmalloc/kfree and page alloc/free microbenchmark for mlt.ko");
