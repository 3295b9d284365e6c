// SPDX-License-Identifier: GPL-2.0
/*
 * MLT: page allocations of kernel memory (FORMAT.md kind "pages").
 *
 * Hooks: the kmem tracepoints mm_page_alloc and mm_page_free. Their
 * __tracepoint_* symbols are not exported to modules on any kernel this
 * module supports, so they are looked up by name with
 * for_each_kernel_tracepoint() and attached with tracepoint_probe_register()
 * (both exported). mm_page_free fires in free_pages_prepare(), which every
 * free of allocated pages goes through, the batched pcp frees
 * (free_unref_page_list(), free_unref_folios()) included: so
 * mm_page_free_batched, which those fire after it for the same pages, is
 * not attached (it would only look every page up twice).
 *
 * What is tracked: allocations that are neither movable (user, page cache,
 * THP: MIGRATE_MOVABLE) nor __GFP_HIGHMEM (GFP_HIGHUSER*, vmalloc's own
 * area pages), tested first in the probe, so that user traffic costs two
 * compares. Of the rest, allocations made for the slab allocator (its
 * backing pages: those objects are tracked as slab already), for large
 * kmalloc (tracked as slab by the kmalloc tracepoint) and for vmalloc areas
 * (kind vmalloc) are excluded by their call path, in the slow path: page
 * flags cannot tell, because PG_slab is set only after the allocator has
 * returned (and cleared before the free), and large kmalloc and vmalloc
 * pages carry no flag at all on these kernels.
 *
 * The call site: mm_page_alloc has none. The stack is walked from the probe
 * (stack_trace_save(), as the kernel itself does; no trace cache) and the
 * frames of the tracepoint, of the page allocator and of its wrappers
 * (alloc_pages(), __get_free_pages(), ...: MLT_PG_ALLOC below) are dropped;
 * the first frame left is the call site, the first frame of the record. If
 * it or one of the MLT_PG_EXCL_FRAMES frames after it lies in a function of
 * the slab, large-kmalloc or vmalloc paths, the allocation is not tracked
 * (counted per class in stats). Only a few frames: a page allocated by
 * reclaim or a shrinker running under a slab allocation must not be dropped.
 * The functions are found at load through a kprobe's symbol lookup
 * (kallsyms_lookup_name is not exported) and their extents from "%pS";
 * names a kernel does not have are skipped.
 *
 * Key: the struct page * of the allocation (vmemmap addresses: they cannot
 * collide with the slab or vmalloc pointers in the same table). Bytes:
 * PAGE_SIZE << order, requested and allocated alike. Sampling counts the
 * same bytes down as slab. Not seen: the bulk allocator's pcp fast path
 * (__alloc_pages_bulk(): page_pool refills, 5.13+), CMA, split_page() and
 * alloc_pages_exact() splits (the head entry keeps claiming the whole
 * order until page 0 is freed): see README.md.
 *
 * Contexts: the probes run wherever pages are allocated and freed, with
 * preemption disabled; NMI is never tracked. Registration: free probe
 * first, then alloc; unregistration in reverse, before
 * mlt_probes_unregister()'s tracepoint_synchronize_unregister().
 */
#define pr_fmt(fmt) "mlt: " fmt

#include <linux/version.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/gfp.h>
#include <linux/kprobes.h>
#include <linux/seq_file.h>
#include <linux/stacktrace.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>
#include "mlt.h"

static bool mlt_pages_on = true;
module_param_named(pages, mlt_pages_on, bool, 0444);
MODULE_PARM_DESC(pages, "Track page allocations of kernel memory (kind pages)");

/* Frames after the call site looked at for the excluded paths. */
#define MLT_PG_EXCL_FRAMES	4

enum mlt_pg_role {
	MLT_PG_NONE,
	MLT_PG_ALLOC,		/* the page allocator and its wrappers: skipped */
	MLT_PG_SLAB,		/* slab backing pages */
	MLT_PG_KLARGE,		/* large kmalloc */
	MLT_PG_VMALLOC,		/* vmalloc area pages */
	MLT_PG_NR_ROLES
};

struct mlt_pg_name {
	const char *name;
	enum mlt_pg_role role;
};

/*
 * The version matrix of the page path: names from 5.10 (__alloc_pages_nodemask,
 * alloc_pages_current, kmalloc_order), 6.1 (__alloc_pages, alloc_pages,
 * __kmalloc_large_node) and 6.10+ (the _noprof names of memory allocation
 * profiling). A name a kernel lacks, or inlined, is skipped.
 */
static const struct mlt_pg_name mlt_pg_names[] = {
	{ "__alloc_pages_nodemask", MLT_PG_ALLOC },
	{ "__alloc_pages", MLT_PG_ALLOC },
	{ "__alloc_pages_noprof", MLT_PG_ALLOC },
	{ "alloc_pages_current", MLT_PG_ALLOC },
	{ "alloc_pages", MLT_PG_ALLOC },
	{ "alloc_pages_noprof", MLT_PG_ALLOC },
	{ "alloc_pages_mpol_noprof", MLT_PG_ALLOC },
	{ "alloc_pages_vma", MLT_PG_ALLOC },
	{ "__folio_alloc", MLT_PG_ALLOC },
	{ "__folio_alloc_noprof", MLT_PG_ALLOC },
	{ "folio_alloc", MLT_PG_ALLOC },
	{ "folio_alloc_noprof", MLT_PG_ALLOC },
	{ "__get_free_pages", MLT_PG_ALLOC },
	{ "get_free_pages_noprof", MLT_PG_ALLOC },
	{ "get_zeroed_page", MLT_PG_ALLOC },
	{ "get_zeroed_page_noprof", MLT_PG_ALLOC },
	{ "alloc_pages_exact", MLT_PG_ALLOC },
	{ "alloc_pages_exact_noprof", MLT_PG_ALLOC },
	{ "alloc_pages_exact_nid", MLT_PG_ALLOC },
	{ "alloc_pages_exact_nid_noprof", MLT_PG_ALLOC },
	{ "__alloc_pages_bulk", MLT_PG_ALLOC },
	{ "alloc_pages_bulk_noprof", MLT_PG_ALLOC },
	{ "allocate_slab", MLT_PG_SLAB },
	{ "new_slab", MLT_PG_SLAB },
	{ "alloc_slab_page", MLT_PG_SLAB },
	{ "___slab_alloc", MLT_PG_SLAB },
	{ "__slab_alloc", MLT_PG_SLAB },
	{ "kmem_getpages", MLT_PG_SLAB },
	{ "cache_grow_begin", MLT_PG_SLAB },
	{ "kmalloc_order", MLT_PG_KLARGE },
	{ "kmalloc_order_trace", MLT_PG_KLARGE },
	{ "kmalloc_large", MLT_PG_KLARGE },
	{ "kmalloc_large_node", MLT_PG_KLARGE },
	{ "__kmalloc_large_node", MLT_PG_KLARGE },
	{ "___kmalloc_large_node", MLT_PG_KLARGE },
	{ "__kmalloc_large_noprof", MLT_PG_KLARGE },
	{ "__kmalloc_large_node_noprof", MLT_PG_KLARGE },
	{ "__vmalloc_area_node", MLT_PG_VMALLOC },
	{ "vm_area_alloc_pages", MLT_PG_VMALLOC },
	{ "__vmalloc_node_range", MLT_PG_VMALLOC },
	{ "__vmalloc_node_range_noprof", MLT_PG_VMALLOC },
	{ "__vmalloc_node", MLT_PG_VMALLOC },
	{ "__vmalloc_node_noprof", MLT_PG_VMALLOC },
};

struct mlt_pg_range {
	unsigned long start, end;
	enum mlt_pg_role role;
};

static struct mlt_pg_range mlt_pg_ranges[ARRAY_SIZE(mlt_pg_names)];
static unsigned int mlt_pg_nr_ranges;

/* Per class: allocations dropped (stats), and those with no allocator frame. */
static DEFINE_PER_CPU(unsigned long[MLT_PG_NR_ROLES], mlt_pg_excluded);

static enum mlt_pg_role mlt_pg_role_of(unsigned long addr)
{
	unsigned int i;

	for (i = 0; i < mlt_pg_nr_ranges; i++)
		if (addr >= mlt_pg_ranges[i].start && addr < mlt_pg_ranges[i].end)
			return mlt_pg_ranges[i].role;
	return MLT_PG_NONE;
}

/*
 * The stack record of a page allocation, from the probe (called by
 * mlt_track_stack() with this CPU's buffer): pinned, MLT_NIL when the table
 * is full, MLT_SKIP when the allocation is not tracked.
 */
u32 mlt_pages_stack(struct mlt_table *t, unsigned long *buf)
{
	unsigned int nr, i, j, end;
	enum mlt_pg_role role;

	nr = stack_trace_save(buf, MLT_BUF_FRAMES, 0);
	mlt_count(MLT_C_UNWIND_COMPLETE, 1);
	/* This module's frames and the tracepoint's, up to the allocator. */
	for (i = 0; i < nr && mlt_pg_role_of(buf[i]) != MLT_PG_ALLOC; i++)
		;
	while (i < nr && mlt_pg_role_of(buf[i]) == MLT_PG_ALLOC)
		i++;
	if (i >= nr) {
		/* No allocator frame (or nothing after it): no call site. */
		this_cpu_inc(mlt_pg_excluded[MLT_PG_NONE]);
		return MLT_SKIP;
	}
	end = min(nr, i + 1 + MLT_PG_EXCL_FRAMES);
	for (j = i; j < end; j++) {
		role = mlt_pg_role_of(buf[j]);
		if (role != MLT_PG_NONE && role != MLT_PG_ALLOC) {
			this_cpu_inc(mlt_pg_excluded[role]);
			return MLT_SKIP;
		}
	}
	return mlt_stack_record(t, buf, i, nr, MLT_KIND_PAGES);
}

NOKPROBE_SYMBOL(mlt_pages_stack);

static void mlt_tp_page_alloc(void *data, struct page *page, unsigned int order,
			      gfp_t gfp, int migratetype)
{
	struct mlt_table *t;
	size_t size;
	u32 sidx;

	if (!page || migratetype == MIGRATE_MOVABLE || (gfp & __GFP_HIGHMEM))
		return;
	size = PAGE_SIZE << order;
	t = mlt_alloc_enter(size, 0, MLT_KIND_PAGES, &sidx);
	if (t)
		mlt_alloc_leave(t, READ_ONCE(t->gen), sidx, (unsigned long)page,
				size, size);
}

/* Most page frees are of pages never tracked (user, page cache): not counted. */
static void mlt_tp_page_free(void *data, struct page *page, unsigned int order)
{
	mlt_on_free_counted(page, false);
}

static void mlt_pg_check_types(void)
{
	check_trace_callback_type_mm_page_alloc(mlt_tp_page_alloc);
	check_trace_callback_type_mm_page_free(mlt_tp_page_free);
}

/* ---- registration ---------------------------------------------------------- */

struct mlt_pg_tp {
	const char *name;
	void *probe;
	struct tracepoint *tp;
	bool on;
};

/* Free first: registered in this order, unregistered in reverse. */
static struct mlt_pg_tp mlt_pg_tps[] = {
	{ "mm_page_free", mlt_tp_page_free },
	{ "mm_page_alloc", mlt_tp_page_alloc },
};

bool mlt_pages_probe_ok;

static void mlt_pg_find_tp(struct tracepoint *tp, void *priv)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mlt_pg_tps); i++)
		if (!strcmp(tp->name, mlt_pg_tps[i].name))
			mlt_pg_tps[i].tp = tp;
}

/*
 * The ranges of mlt_pg_names: each name's address from a kprobe's symbol
 * lookup (the probes are removed at once, in one grace period), its
 * extent from "%pS".
 */
static struct kprobe mlt_pg_kps[ARRAY_SIZE(mlt_pg_names)];

static void mlt_pg_resolve(void)
{
	struct kprobe *regd[ARRAY_SIZE(mlt_pg_names)];
	unsigned int i, n = 0;
	unsigned long start, end;
	int err;

	mlt_pg_nr_ranges = 0;
	for (i = 0; i < ARRAY_SIZE(mlt_pg_names); i++) {
		struct kprobe *kp = &mlt_pg_kps[i];

		memset(kp, 0, sizeof(*kp));
		kp->symbol_name = mlt_pg_names[i].name;
		err = register_kprobe(kp);
		if (!err)
			regd[n++] = kp;
		/* A kprobe refused on a function that exists has its address. */
		if (!kp->addr ||
		    mlt_vm_func_range((unsigned long)kp->addr, &start, &end))
			continue;
		mlt_pg_ranges[mlt_pg_nr_ranges].start = start;
		mlt_pg_ranges[mlt_pg_nr_ranges].end = end;
		mlt_pg_ranges[mlt_pg_nr_ranges].role = mlt_pg_names[i].role;
		mlt_pg_nr_ranges++;
	}
	if (n)
		unregister_kprobes(regd, n);
}

static void mlt_pg_unregister_tps(void)
{
	int i;

	for (i = ARRAY_SIZE(mlt_pg_tps) - 1; i >= 0; i--) {
		if (mlt_pg_tps[i].on)
			tracepoint_probe_unregister(mlt_pg_tps[i].tp,
						    mlt_pg_tps[i].probe, NULL);
		mlt_pg_tps[i].on = false;
	}
}

int mlt_pages_register(void)
{
	unsigned int i, alloc = 0;
	int err;

	mlt_pg_check_types();
	if (!mlt_pages_on) {
		pr_info("page tracking off (pages=0)\n");
		return -EOPNOTSUPP;
	}
	mlt_pg_resolve();
	for (i = 0; i < mlt_pg_nr_ranges; i++)
		alloc += mlt_pg_ranges[i].role == MLT_PG_ALLOC;
	if (!alloc) {
		pr_warn("no page tracking: the page allocator's functions were not found\n");
		return -ENOENT;
	}
	for_each_kernel_tracepoint(mlt_pg_find_tp, NULL);
	for (i = 0; i < ARRAY_SIZE(mlt_pg_tps); i++) {
		err = mlt_pg_tps[i].tp ? tracepoint_probe_register(mlt_pg_tps[i].tp,
								   mlt_pg_tps[i].probe,
								   NULL) : -ENOENT;
		if (err) {
			pr_warn("no page tracking: cannot attach to tracepoint %s: %d\n",
				mlt_pg_tps[i].name, err);
			mlt_pg_unregister_tps();
			return err;
		}
		mlt_pg_tps[i].on = true;
	}
	mlt_pages_probe_ok = true;
	return 0;
}

/* The caller waits for probes in flight (tracepoint_synchronize_unregister()). */
void mlt_pages_unregister(void)
{
	mlt_pg_unregister_tps();
	mlt_pages_probe_ok = false;
}

void mlt_pages_stats(struct seq_file *m)
{
	static const char * const names[MLT_PG_NR_ROLES] = {
		[MLT_PG_NONE] = "pages_no_call_site",
		[MLT_PG_ALLOC] = NULL,
		[MLT_PG_SLAB] = "pages_excluded_slab",
		[MLT_PG_KLARGE] = "pages_excluded_kmalloc_large",
		[MLT_PG_VMALLOC] = "pages_excluded_vmalloc",
	};
	unsigned long sum;
	int r, cpu;

	seq_printf(m, "page_probe %d\npage_ranges %u\n", mlt_pages_probe_ok,
		   mlt_pg_nr_ranges);
	for (r = 0; r < MLT_PG_NR_ROLES; r++) {
		if (!names[r])
			continue;
		sum = 0;
		for_each_possible_cpu(cpu)
			sum += per_cpu(mlt_pg_excluded, cpu)[r];
		seq_printf(m, "%s %lu\n", names[r], sum);
	}
}
