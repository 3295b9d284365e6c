// SPDX-License-Identifier: GPL-2.0
/*
 * mlt_bench: kmalloc(64) + kfree microbenchmark for mlt.ko.
 *
 *   echo N > /sys/module/mlt_bench/parameters/run   time N kmalloc+kfree pairs
 *   cat /sys/module/mlt_bench/parameters/result_ps  picoseconds per pair
 *   echo 1 > /sys/module/mlt_bench/parameters/count_probe
 *   echo S > /sys/module/mlt_bench/parameters/stacks  allocate from S stacks
 *
 * count_probe attaches the cheapest possible tracepoint tracker to kmalloc
 * and kfree: a probe that only increments a per-CPU counter. It is the floor
 * that any tracepoint-based tracker (mlt.ko included) pays.
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
MODULE_PARM_DESC(result_ps, "Picoseconds per kmalloc+kfree of the last run");

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
		if (err) {
			unregister_trace_kfree(mltb_tp_kfree, NULL);
			tracepoint_synchronize_unregister();
			return err;
		}
	} else {
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
MODULE_PARM_DESC(count_probe, "Attach the counting-only probe to kmalloc and kfree");

static unsigned int stacks = 1;
module_param(stacks, uint, 0644);
MODULE_PARM_DESC(stacks, "Distinct stacks the loop allocates from (1..64)");

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
	mltb_loop(n);
	dt = ktime_get_ns() - t0;
	result_ps = div_u64(dt * 1000, n);
	return 0;
}

static const struct kernel_param_ops mltb_run_ops = {
	.set = mltb_run_set,
};
module_param_cb(run, &mltb_run_ops, NULL, 0200);
MODULE_PARM_DESC(run, "Time this many kmalloc(64)+kfree pairs");

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
MODULE_DESCRIPTION("kmalloc/kfree microbenchmark for mlt.ko");
