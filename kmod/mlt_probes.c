// SPDX-License-Identifier: GPL-2.0
/*
 * mlt_probes.c - the kmem tracepoint probes and the free_bulk kprobe.
 *
 * This file is the only place that knows how the kmem tracepoints differ
 * between kernel versions (lttng-modules style: one matrix, nothing
 * scattered):
 *
 *   5.10 - 5.11  kmalloc, kmalloc_node, kmem_cache_alloc, kmem_cache_alloc_node
 *                (call_site, ptr, bytes_req, bytes_alloc, gfp[, node]);
 *                kfree and kmem_cache_free (call_site, ptr)
 *   5.12 - 6.0   as above, kmem_cache_free gains (..., const char *name)
 *   6.1 -        the _node variants are gone; kmalloc gains node;
 *                kmem_cache_alloc (call_site, ptr, struct kmem_cache *s, gfp,
 *                node); kmem_cache_free (call_site, ptr, struct kmem_cache *s)
 *   6.8 -        struct kmem_cache is private to mm/: no cache name for the
 *                slab filter (size still via kmem_cache_size())
 *
 * Contexts: the probes run wherever kmalloc/kfree run (task, softirq, hard
 * IRQ; NMI is filtered in mlt_core.c) with preemption disabled. kfree_rcu()
 * frees in bulk through kmem_cache_free_bulk(), which fires no tracepoint;
 * an entry kprobe on it removes those objects from the table.
 * Registration: free probes first, then alloc probes, so that nothing is
 * tracked whose free would be missed; unregistration in reverse, then
 * tracepoint_synchronize_unregister() before any table is freed.
 */
#define pr_fmt(fmt) "mlt: " fmt

#include <linux/version.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/kprobes.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>
#include "mlt.h"

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
#error "mlt needs Linux 5.10 or later"
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0) && \
	LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0) && defined(CONFIG_SLUB)
/*
 * slub_def.h holds the public struct kmem_cache (and its name) here, but
 * its static inline helpers want mm/slab.h's struct slab, which is not in
 * the installed headers. Give them just enough to compile; they are never
 * called from this file.
 */
struct slab {
	unsigned int objects;
};

static inline void *slab_address(const struct slab *slab)
{
	return NULL;
}

#include <linux/slub_def.h>
#define MLT_CACHE_NAME(s)	((s)->name)
#else
#define MLT_CACHE_NAME(s)	NULL
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)

static void mlt_tp_kmalloc(void *data, unsigned long call_site, const void *ptr,
			   size_t bytes_req, size_t bytes_alloc, gfp_t gfp,
			   int node)
{
	mlt_on_alloc(ptr, bytes_req, call_site, NULL);
}

static void mlt_tp_cache_alloc(void *data, unsigned long call_site,
			       const void *ptr, struct kmem_cache *s, gfp_t gfp,
			       int node)
{
	if (ptr)
		mlt_on_alloc(ptr, kmem_cache_size(s), call_site, MLT_CACHE_NAME(s));
}

static void mlt_tp_cache_free(void *data, unsigned long call_site,
			      const void *ptr, const struct kmem_cache *s)
{
	mlt_on_free(ptr);
}

#define MLT_ALLOC_TPS(op)						\
	op(kmalloc, mlt_tp_kmalloc)					\
	op(kmem_cache_alloc, mlt_tp_cache_alloc)

#else /* 5.10 - 6.0 */

static void mlt_tp_kmalloc(void *data, unsigned long call_site, const void *ptr,
			   size_t bytes_req, size_t bytes_alloc, gfp_t gfp)
{
	mlt_on_alloc(ptr, bytes_req, call_site, NULL);
}

static void mlt_tp_kmalloc_node(void *data, unsigned long call_site,
				const void *ptr, size_t bytes_req,
				size_t bytes_alloc, gfp_t gfp, int node)
{
	mlt_on_alloc(ptr, bytes_req, call_site, NULL);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 12, 0)
static void mlt_tp_cache_free(void *data, unsigned long call_site,
			      const void *ptr, const char *name)
{
	mlt_on_free(ptr);
}
#else
static void mlt_tp_cache_free(void *data, unsigned long call_site,
			      const void *ptr)
{
	mlt_on_free(ptr);
}
#endif

/* No cache pointer in these kernels: kmem_cache_alloc counts as kmalloc. */
#define MLT_ALLOC_TPS(op)						\
	op(kmalloc, mlt_tp_kmalloc)					\
	op(kmalloc_node, mlt_tp_kmalloc_node)				\
	op(kmem_cache_alloc, mlt_tp_kmalloc)				\
	op(kmem_cache_alloc_node, mlt_tp_kmalloc_node)

#endif /* LINUX_VERSION_CODE */

static void mlt_tp_kfree(void *data, unsigned long call_site, const void *ptr)
{
	mlt_on_free(ptr);
}

#define MLT_FREE_TPS(op)						\
	op(kfree, mlt_tp_kfree)						\
	op(kmem_cache_free, mlt_tp_cache_free)

bool mlt_slab_filter_supported(void)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0) && \
	LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0) && defined(CONFIG_SLUB)
	return true;
#else
	return false;
#endif
}

/* void kmem_cache_free_bulk(struct kmem_cache *s, size_t size, void **p) */
static int mlt_kp_free_bulk(struct kprobe *kp, struct pt_regs *regs)
{
	size_t n = regs_get_kernel_argument(regs, 1);
	void **p = (void **)regs_get_kernel_argument(regs, 2);
	size_t i;

	for (i = 0; i < n; i++)
		mlt_on_free(p[i]);
	this_cpu_add(mlt_pcpu->cnt[MLT_C_BULK_FREES], n);
	return 0;
}

static struct kprobe mlt_kp = {
	.symbol_name = "kmem_cache_free_bulk",
	.pre_handler = mlt_kp_free_bulk,
};

bool mlt_bulk_probe_ok;

/* One "registered" flag per tracepoint, so teardown only removes what is on. */
#define MLT_FLAG(tp, fn)	static bool mlt_on_##tp;
MLT_ALLOC_TPS(MLT_FLAG)
MLT_FREE_TPS(MLT_FLAG)

#define MLT_REG(tp, fn)							\
	do {								\
		err = register_trace_##tp(fn, NULL);			\
		if (err) {						\
			pr_err("cannot attach to tracepoint " #tp ": %d\n", err); \
			goto fail;					\
		}							\
		mlt_on_##tp = true;					\
	} while (0);

#define MLT_UNREG(tp, fn)						\
	do {								\
		if (mlt_on_##tp)					\
			unregister_trace_##tp(fn, NULL);		\
		mlt_on_##tp = false;					\
	} while (0);

static void mlt_unregister_all(void)
{
	MLT_ALLOC_TPS(MLT_UNREG)
	if (mlt_bulk_probe_ok)
		unregister_kprobe(&mlt_kp);
	mlt_bulk_probe_ok = false;
	MLT_FREE_TPS(MLT_UNREG)
	tracepoint_synchronize_unregister();
}

int mlt_probes_register(void)
{
	int err;

	MLT_FREE_TPS(MLT_REG)
	err = register_kprobe(&mlt_kp);
	if (err)
		pr_warn("no kprobe on kmem_cache_free_bulk (%d): kfree_rcu objects will look leaked\n",
			err);
	mlt_bulk_probe_ok = !err;
	MLT_ALLOC_TPS(MLT_REG)
	return 0;
fail:
	mlt_unregister_all();
	return err;
}

void mlt_probes_unregister(void)
{
	mlt_unregister_all();
}
