// SPDX-License-Identifier: GPL-2.0
/*
 * MLT: the kmem tracepoint probes and the free_bulk kprobe.
 *
 * This file is the only place that knows how the kmem tracepoints differ
 * between kernel versions (lttng-modules style: one matrix, nothing
 * scattered). The version tests are the four MLT_* feature macros below:
 *
 *   5.10 - 5.11  kmalloc, kmalloc_node, kmem_cache_alloc, kmem_cache_alloc_node
 *                (call_site, ptr, bytes_req, bytes_alloc, gfp[, node]);
 *                kfree and kmem_cache_free (call_site, ptr)
 *   5.12 - 6.0   as above, kmem_cache_free gains (..., const char *name)
 *   6.1 -        the _node variants are gone; kmalloc gains node;
 *                kmem_cache_alloc (call_site, ptr, struct kmem_cache *s, gfp,
 *                node); kmem_cache_free (call_site, ptr, struct kmem_cache *s)
 *   6.8 -        struct kmem_cache is private to mm/: no cache name for the
 *                slab filter (the size still comes from kmem_cache_size())
 *
 * The slab filter names a cache by its sysfs directory: SLUB merges caches
 * of like size and flags, and the merged cache allocates for all of them
 * under one struct kmem_cache, whose name is the first one's; every merged
 * name is a link in /sys/kernel/slab to its one directory (kobject).
 *
 * Every probe is type-checked against its tracepoint at compile time with
 * check_trace_callback_type_<name>(), then registered from one table.
 *
 * Contexts: the probes run wherever kmalloc/kfree run (task, softirq, hard
 * IRQ, rarely NMI: see mlt_core.c), with preemption disabled. kfree_rcu()
 * frees in bulk through kmem_cache_free_bulk(), which fires no tracepoint;
 * an entry kprobe on it removes those objects from the table.
 * Registration: free probes first, then alloc probes, so that nothing is
 * tracked whose free would be missed; unregistration in reverse, then
 * tracepoint_synchronize_unregister() before any table is freed. Both run
 * in process context from module init and exit only.
 */
#define pr_fmt(fmt) "mlt: " fmt

#include <linux/version.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/namei.h>
#include <linux/dcache.h>
#include <linux/path.h>
#include <linux/slab.h>
#include <linux/kprobes.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>
#include "mlt.h"

/* ---- the version matrix ------------------------------------------------- */

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
#error "mlt needs Linux 5.10 or later"
#endif
/* 6.1: kmem_cache_alloc passes the cache; the _node tracepoints are gone. */
#define MLT_TP_CACHE_PTR	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0))
/* 5.12 - 6.0: kmem_cache_free passes the cache name. */
#define MLT_TP_FREE_NAME	(LINUX_VERSION_CODE >= KERNEL_VERSION(5, 12, 0))
/*
 * Up to 6.7, SLUB's struct kmem_cache (and its name and sysfs kobject) is a
 * public header.
 */
#define MLT_PUBLIC_CACHE	(LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0) && \
				 IS_ENABLED(CONFIG_SLUB) && IS_ENABLED(CONFIG_SYSFS))

/* ---- probes --------------------------------------------------------------- */

#if MLT_TP_CACHE_PTR && MLT_PUBLIC_CACHE
/*
 * slub_def.h holds struct kmem_cache here, but its static inline helpers
 * want mm/slab.h's struct slab, which is not in the installed headers.
 * Give them just enough to compile; nothing in this file calls them.
 */
struct slab {
	unsigned int objects;
};

static inline void *slab_address(const struct slab *slab)
{
	return NULL;
}

#include <linux/slub_def.h>
/* What the slab filter compares: the cache's sysfs name (NULL before sysfs). */
#define MLT_CACHE_NAME(s)	kobject_name(&(s)->kobj)
/* The object size with its metadata, as /proc/slabinfo and kmalloc's bytes_alloc. */
#define MLT_CACHE_SIZE(s)	((s)->size)
/* kmem_cache_size(), without the call on every allocation. */
#define MLT_CACHE_OBJ_SIZE(s)	((s)->object_size)
#else
#define MLT_CACHE_NAME(s)	NULL
/* Not known here: the slow path asks ksize() (mlt_on_alloc()). */
#define MLT_CACHE_SIZE(s)	0
#define MLT_CACHE_OBJ_SIZE(s)	kmem_cache_size(s)
#endif

static void mlt_tp_kfree(void *data, unsigned long call_site, const void *ptr)
{
	mlt_on_free(ptr);
}

#if MLT_TP_CACHE_PTR

static void mlt_tp_kmalloc(void *data, unsigned long call_site, const void *ptr,
			   size_t bytes_req, size_t bytes_alloc, gfp_t gfp,
			   int node)
{
	mlt_on_alloc(ptr, bytes_req, bytes_alloc, call_site, NULL);
}

static void mlt_tp_cache_alloc(void *data, unsigned long call_site,
			       const void *ptr, struct kmem_cache *s, gfp_t gfp,
			       int node)
{
	/*
	 * mlt_on_alloc(), written out so that the cache's size with metadata
	 * and name are read only on the slow path (arguments are read first).
	 */
	if (likely(mlt_countdown(MLT_CACHE_OBJ_SIZE(s))))
		return;
	mlt_alloc_slow(ptr, MLT_CACHE_OBJ_SIZE(s), MLT_CACHE_SIZE(s), call_site,
		       MLT_CACHE_NAME(s));
}

static void mlt_tp_cache_free(void *data, unsigned long call_site,
			      const void *ptr, const struct kmem_cache *s)
{
	mlt_on_free(ptr);
}

static void mlt_check_types(void)
{
	check_trace_callback_type_kmalloc(mlt_tp_kmalloc);
	check_trace_callback_type_kmem_cache_alloc(mlt_tp_cache_alloc);
	check_trace_callback_type_kfree(mlt_tp_kfree);
	check_trace_callback_type_kmem_cache_free(mlt_tp_cache_free);
}

#else /* 5.10 - 6.0: no cache pointer, kmem_cache_alloc counts as kmalloc */

static void mlt_tp_kmalloc(void *data, unsigned long call_site, const void *ptr,
			   size_t bytes_req, size_t bytes_alloc, gfp_t gfp)
{
	mlt_on_alloc(ptr, bytes_req, bytes_alloc, call_site, NULL);
}

static void mlt_tp_kmalloc_node(void *data, unsigned long call_site,
				const void *ptr, size_t bytes_req,
				size_t bytes_alloc, gfp_t gfp, int node)
{
	mlt_on_alloc(ptr, bytes_req, bytes_alloc, call_site, NULL);
}

#if MLT_TP_FREE_NAME
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

static void mlt_check_types(void)
{
	check_trace_callback_type_kmalloc(mlt_tp_kmalloc);
	check_trace_callback_type_kmalloc_node(mlt_tp_kmalloc_node);
	check_trace_callback_type_kmem_cache_alloc(mlt_tp_kmalloc);
	check_trace_callback_type_kmem_cache_alloc_node(mlt_tp_kmalloc_node);
	check_trace_callback_type_kfree(mlt_tp_kfree);
	check_trace_callback_type_kmem_cache_free(mlt_tp_cache_free);
}

#endif /* MLT_TP_CACHE_PTR */

bool mlt_slab_filter_supported(void)
{
	return MLT_TP_CACHE_PTR && MLT_PUBLIC_CACHE;
}

/*
 * The name the slab filter compares for the cache called name: the name of
 * the sysfs directory /sys/kernel/slab/<name> is or links to. That of a
 * cache SLUB merged into another is the other's (":0000200"-like for
 * mergeable caches), which is what the allocator passes to the tracepoint
 * for both. A '/' in a cache name is a '!' in sysfs (kobject names).
 * Process context; the path is looked up in the caller's mount namespace.
 * -ENOENT: no such cache (or sysfs is not at /sys there); key is then the
 * cache's own sysfs name, which an unmerged cache of that name would have.
 */
int mlt_slab_key(const char *name, char *key, size_t size)
{
#if MLT_TP_CACHE_PTR && MLT_PUBLIC_CACHE
	struct path path;
	char *p;
	int err;

	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if (strscpy(key, name, size) < 0)
		return -ENAMETOOLONG;
	strreplace(key, '/', '!');
	p = kasprintf(GFP_KERNEL, "/sys/kernel/slab/%s", key);
	if (!p)
		return -ENOMEM;
	err = kern_path(p, LOOKUP_FOLLOW, &path);
	kfree(p);
	if (err)
		return err;
	if (!d_is_dir(path.dentry))
		err = -ENOENT;
	else if (snprintf(key, size, "%pd", path.dentry) >= size)
		err = -ENAMETOOLONG;
	path_put(&path);
	return err;
#else
	return -EOPNOTSUPP;
#endif
}

/* ---- registration ---------------------------------------------------------- */

struct mlt_tp {
	struct tracepoint *tp;
	void *probe;
	const char *name;
	bool on;
};

/* Frees first: registered in this order, unregistered in reverse. */
static struct mlt_tp mlt_tps[] = {
	{ &__tracepoint_kfree, mlt_tp_kfree, "kfree" },
	{ &__tracepoint_kmem_cache_free, mlt_tp_cache_free, "kmem_cache_free" },
	{ &__tracepoint_kmalloc, mlt_tp_kmalloc, "kmalloc" },
#if MLT_TP_CACHE_PTR
	{ &__tracepoint_kmem_cache_alloc, mlt_tp_cache_alloc, "kmem_cache_alloc" },
#else
	{ &__tracepoint_kmalloc_node, mlt_tp_kmalloc_node, "kmalloc_node" },
	{ &__tracepoint_kmem_cache_alloc, mlt_tp_kmalloc, "kmem_cache_alloc" },
	{ &__tracepoint_kmem_cache_alloc_node, mlt_tp_kmalloc_node,
	  "kmem_cache_alloc_node" },
#endif
};

#define MLT_NR_FREE_TPS	2	/* the kprobe goes in after these */

/* void kmem_cache_free_bulk(struct kmem_cache *s, size_t size, void **p) */
static int mlt_kp_free_bulk(struct kprobe *kp, struct pt_regs *regs)
{
	size_t n = regs_get_kernel_argument(regs, 1);
	void **p = (void **)regs_get_kernel_argument(regs, 2);
	size_t i;

	for (i = 0; i < n; i++)
		mlt_on_free(p[i]);
	mlt_count(MLT_C_BULK_FREES, n);
	return 0;
}

NOKPROBE_SYMBOL(mlt_kp_free_bulk);

static struct kprobe mlt_kp = {
	.symbol_name = "kmem_cache_free_bulk",
	.pre_handler = mlt_kp_free_bulk,
};

bool mlt_bulk_probe_ok;

/*
 * Debug, for tests: put the kprobe on a function kprobes refuse (the
 * handler above, NOKPROBE_SYMBOL), so that registration fails as it does
 * with CONFIG_KPROBES=n or lockdown, and the module runs without it.
 */
static bool mlt_bulk_probe_refused;
module_param_named(debug_bulk_probe_refused, mlt_bulk_probe_refused, bool, 0444);
MODULE_PARM_DESC(debug_bulk_probe_refused, "Debug: register the kmem_cache_free_bulk kprobe where kprobes refuse it, to test running without it");

static void mlt_unregister_all(void)
{
	int i;

	for (i = ARRAY_SIZE(mlt_tps) - 1; i >= 0; i--) {
		if (i == MLT_NR_FREE_TPS - 1 && mlt_bulk_probe_ok) {
			unregister_kprobe(&mlt_kp);
			mlt_bulk_probe_ok = false;
		}
		if (mlt_tps[i].on)
			tracepoint_probe_unregister(mlt_tps[i].tp, mlt_tps[i].probe, NULL);
		mlt_tps[i].on = false;
	}
	tracepoint_synchronize_unregister();
}

int mlt_probes_register(void)
{
	unsigned int i;
	int err;

	mlt_check_types();
	for (i = 0; i < ARRAY_SIZE(mlt_tps); i++) {
		if (i == MLT_NR_FREE_TPS) {
			if (mlt_bulk_probe_refused)
				mlt_kp.symbol_name = "mlt_kp_free_bulk";
			err = register_kprobe(&mlt_kp);
			if (err)
				pr_warn("no kprobe on kmem_cache_free_bulk (%d): kfree_rcu objects will look leaked\n",
					err);
			mlt_bulk_probe_ok = !err;
		}
		err = tracepoint_probe_register(mlt_tps[i].tp, mlt_tps[i].probe, NULL);
		if (err) {
			pr_err("cannot attach to tracepoint %s: %d\n", mlt_tps[i].name, err);
			mlt_unregister_all();
			return err;
		}
		mlt_tps[i].on = true;
	}
	return 0;
}

void mlt_probes_unregister(void)
{
	mlt_unregister_all();
}
