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
 * What is tracked: allocations that are neither movable (user, most page
 * cache, THP: MIGRATE_MOVABLE) nor __GFP_HIGHMEM (GFP_HIGHUSER*, vmalloc's
 * own area pages), tested first in the probe, so that user traffic costs
 * two compares. Of the rest, allocations made for the slab allocator (its
 * backing pages: those objects are tracked as slab already), for large
 * kmalloc (tracked as slab by the kmalloc tracepoint), for vmalloc areas
 * (kind vmalloc) and for the page cache (block device mappings and
 * filesystem metadata mappings are not movable) are excluded by their call
 * path, in the slow path: page flags cannot tell, because PG_slab is set
 * only after the allocator has returned (and cleared before the free), a
 * page-cache page joins its mapping only after it, and large kmalloc and
 * vmalloc pages carry no flag at all on these kernels.
 *
 * The call site: mm_page_alloc has none. The stack is walked from the probe
 * (mlt_walk_probe(): the kernel's walk, cut where an interrupt came in; no
 * trace cache). After this module's frames (and the tracepoint iterator's)
 * must come the page allocator, which fired the tracepoint; it and its
 * wrappers (alloc_pages(), __get_free_pages(), ...: MLT_PG_ALLOC below) are
 * dropped, and the first frame left is the call site, the first frame of
 * the record. A walk that does not go that way is not searched further (in
 * an interrupt, further down is the interrupted code) and not tracked
 * (pages_no_call_site). If the call site or one of the MLT_PG_EXCL_FRAMES
 * frames after it in this context lies in a function of the slab,
 * large-kmalloc, vmalloc or page-cache paths, the allocation is not tracked
 * (counted per class in stats). Only a few frames: a page allocated by
 * reclaim or a shrinker running under a slab allocation must not be dropped.
 * The functions are found at load through a (disabled) kprobe's symbol
 * lookup (kallsyms_lookup_name is not exported), with their ".cold" and
 * ".part.0" parts and ".isra.0"/".constprop.0" clones, and their extents
 * from "%pS"; names a kernel does not have are skipped. The call site's
 * call target counts only where it is a function's entry.
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
#include <linux/slab.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <trace/events/kmem.h>
#include "mlt.h"

static bool mlt_pages_on = true;
module_param_named(pages, mlt_pages_on, bool, 0444);
MODULE_PARM_DESC(pages, "Track page allocations of kernel memory (kind pages)");

/* Frames after the call site looked at for the excluded paths. */
#define MLT_PG_EXCL_FRAMES	4

enum mlt_pg_role {
	MLT_PG_NONE,
	MLT_PG_TP,		/* the tracepoint's iterator: skipped */
	MLT_PG_ALLOC,		/* the page allocator and its wrappers: skipped */
	MLT_PG_SLAB,		/* slab backing pages */
	MLT_PG_KLARGE,		/* large kmalloc */
	MLT_PG_VMALLOC,		/* vmalloc area pages */
	MLT_PG_PAGECACHE,	/* page cache */
	MLT_PG_NR_ROLES
};

struct mlt_pg_name {
	const char *name;
	enum mlt_pg_role role;
};

/*
 * The version matrix of the page path: names from 5.10 (__alloc_pages_nodemask,
 * alloc_pages_current, kmalloc_order, __page_cache_alloc), 6.1 (__alloc_pages,
 * alloc_pages, __kmalloc_large_node, filemap_alloc_folio) and 6.10+ (the
 * _noprof names of memory allocation profiling). A name a kernel lacks, or
 * inlined, is skipped; the parts gcc split off a function and its clones
 * (mlt_pg_suffixes: "name.cold", "name.isra.0", ...) are looked up too.
 *
 * Page cache: every page-cache page is allocated by filemap_alloc_folio()
 * (__page_cache_alloc() on 5.10), whatever the filesystem or block device;
 * those of a mapping that is movable (files, tmpfs) are filtered in the
 * probe already, the others (a block device's own mapping: GFP_USER, so
 * blkid, dd, partition scans, and the metadata filesystems read through
 * it with sb_bread_unmovable(); btrfs/f2fs metadata mappings: GFP_NOFS)
 * by their path here. The allocator's callers in filemap.c, into which it
 * may be inlined (as the kernel builds with it in the same file), and the
 * readahead and buffer-head paths that reach it stand behind it.
 */
static const struct mlt_pg_name mlt_pg_names[] = {
	{ "__traceiter_mm_page_alloc", MLT_PG_TP },
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
	/* The page-cache allocator. */
	{ "__page_cache_alloc", MLT_PG_PAGECACHE },
	{ "filemap_alloc_folio", MLT_PG_PAGECACHE },
	{ "filemap_alloc_folio_noprof", MLT_PG_PAGECACHE },
	/* Its callers in filemap.c (it may be inlined into them). */
	{ "pagecache_get_page", MLT_PG_PAGECACHE },
	{ "__filemap_get_folio", MLT_PG_PAGECACHE },
	{ "filemap_create_folio", MLT_PG_PAGECACHE },
	{ "filemap_get_pages", MLT_PG_PAGECACHE },
	{ "generic_file_buffered_read", MLT_PG_PAGECACHE },
	{ "do_read_cache_page", MLT_PG_PAGECACHE },
	{ "do_read_cache_folio", MLT_PG_PAGECACHE },
	/* Readahead and buffer heads, behind them. */
	{ "page_cache_ra_unbounded", MLT_PG_PAGECACHE },
	{ "page_cache_ra_order", MLT_PG_PAGECACHE },
	{ "grow_dev_page", MLT_PG_PAGECACHE },
	{ "grow_dev_folio", MLT_PG_PAGECACHE },
	{ "grow_buffers", MLT_PG_PAGECACHE },
	{ "__getblk_slow", MLT_PG_PAGECACHE },
	{ "__getblk_gfp", MLT_PG_PAGECACHE },
	{ "bdev_getblk", MLT_PG_PAGECACHE },
};

/*
 * The symbols gcc may give a function's code besides its name: the parts
 * it split off (".cold", ".part.0") and the clones it made of a function
 * with arguments dropped or constant (".isra.0", ".constprop.0"), which a
 * static function may be known by alone. Looked up for every name, found
 * or not; kallsyms cannot be listed from a module, so these are the
 * variants covered (gcc numbers further clones .1, .2 ...: not looked up).
 */
static const char * const mlt_pg_suffixes[] = {
	"", ".cold", ".part.0", ".isra.0", ".constprop.0",
};

#define MLT_PG_SUFFIXES	ARRAY_SIZE(mlt_pg_suffixes)

struct mlt_pg_range {
	unsigned long start, end;
	enum mlt_pg_role role;
};

static struct mlt_pg_range mlt_pg_ranges[ARRAY_SIZE(mlt_pg_names) * MLT_PG_SUFFIXES];
static unsigned int mlt_pg_nr_ranges;

/*
 * Per role: allocations dropped (stats); MLT_PG_NONE counts those whose
 * walk did not lead from the tracepoint to the page allocator.
 */
static DEFINE_PER_CPU(unsigned long[MLT_PG_NR_ROLES], mlt_pg_excluded);

static enum mlt_pg_role mlt_pg_role_of(unsigned long addr)
{
	unsigned int i;

	for (i = 0; i < mlt_pg_nr_ranges; i++)
		if (addr >= mlt_pg_ranges[i].start && addr < mlt_pg_ranges[i].end)
			return mlt_pg_ranges[i].role;
	return MLT_PG_NONE;
}

#ifdef CONFIG_ARM64
/*
 * A module's call out of branch range goes through its PLT veneer
 * (adrp x16; add x16, x16, #lo12; br x16): where the veneer at pc goes, or
 * pc if it is none.
 */
static unsigned long mlt_pg_veneer(unsigned long pc)
{
	__le32 w[3];
	u32 adrp, add;
	long imm;

	if (copy_from_kernel_nofault(w, (void *)pc, sizeof(w)))
		return pc;
	adrp = le32_to_cpu(w[0]);
	add = le32_to_cpu(w[1]);
	if ((adrp & 0x9f00001f) != 0x90000010 ||
	    (add & 0xffc003ff) != 0x91000210 || le32_to_cpu(w[2]) != 0xd61f0200)
		return pc;
	/* immhi:immlo, 21 bits, sign-extended, in pages. */
	imm = (s32)((((adrp >> 5) & 0x7ffff) << 2 | ((adrp >> 29) & 3)) << 11) >> 11;
	return (pc & ~0xfffUL) + imm * 4096 + ((add >> 10) & 0xfff);
}
#endif

/*
 * The function that the call just before return address ret called, if
 * that was a direct call (x86_64: call rel32; arm64: bl), else 0. A
 * function that tail-called the page allocator left no frame of its own
 * (filemap_alloc_folio() does: "return folio_alloc(...)"), but the call
 * into it from the frame below still names it (arm64: through the
 * caller's PLT veneer, for a module out of branch range).
 */
static unsigned long mlt_pg_call_target(unsigned long ret)
{
#if defined(CONFIG_X86_64)
	u8 insn[5];
	s32 rel;

	if (copy_from_kernel_nofault(insn, (void *)(ret - sizeof(insn)),
				     sizeof(insn)) || insn[0] != 0xe8)
		return 0;
	memcpy(&rel, insn + 1, sizeof(rel));
	return ret + rel;
#elif defined(CONFIG_ARM64)
	__le32 w;
	u32 insn;

	if (copy_from_kernel_nofault(&w, (void *)(ret - sizeof(w)), sizeof(w)))
		return 0;
	insn = le32_to_cpu(w);
	if ((insn & 0xfc000000) != 0x94000000)
		return 0;
	/* imm26, in instructions, sign-extended. */
	return mlt_pg_veneer(ret - sizeof(w) + ((long)(s32)(insn << 6) >> 4));
#else
	return 0;
#endif
}

/*
 * Where a direct call into a function lands: its first byte. With call
 * depth tracking (x86_64 6.2+, CONFIG_CALL_THUNKS, retbleed=stuff) the
 * kernel patches direct calls to an accounting thunk in the padding just
 * before the function (CONFIG_FUNCTION_PADDING_BYTES), so that counts too.
 */
#ifdef CONFIG_CALL_THUNKS
#define MLT_PG_ENTRY_PAD	CONFIG_FUNCTION_PADDING_BYTES
#else
#define MLT_PG_ENTRY_PAD	0
#endif

/*
 * The role of the function that a decoded call target enters, or
 * MLT_PG_NONE when it is no function's entry. Only entries count: bytes
 * before a return address that merely look like a direct call (an
 * indirect call rewritten into "call *%reg" and padding, a SIB byte 0xe8,
 * a displacement) decode to an address anywhere, mid-function included.
 */
static enum mlt_pg_role mlt_pg_entry_role(unsigned long addr)
{
	unsigned int i;

	for (i = 0; i < mlt_pg_nr_ranges; i++)
		if (addr <= mlt_pg_ranges[i].start &&
		    mlt_pg_ranges[i].start - addr <= MLT_PG_ENTRY_PAD)
			return mlt_pg_ranges[i].role;
	return MLT_PG_NONE;
}

/*
 * The role of frame j of a walk whose call site is frame i: the function
 * it lies in, or for the call site, in none, the function its call
 * entered.
 */
static enum mlt_pg_role mlt_pg_frame_role(const unsigned long *buf,
					  unsigned int i, unsigned int j)
{
	enum mlt_pg_role role = mlt_pg_role_of(buf[j]);
	unsigned long callee;

	if (role != MLT_PG_NONE || j != i)
		return role;
	callee = mlt_pg_call_target(buf[i]);
	return callee ? mlt_pg_entry_role(callee) : MLT_PG_NONE;
}

/*
 * The stack record of a page allocation, from the probe (called by
 * mlt_track_stack() with this CPU's buffer): pinned, MLT_NIL when the table
 * is full, MLT_SKIP when the allocation is not tracked.
 *
 * The walk must lead from this module's frames (and the tracepoint's
 * iterator, there when more than one probe is attached) straight into the
 * page allocator: the function that fired the tracepoint. The call site is
 * the first frame after the allocator and its wrappers. Nothing is searched
 * for further down: in an interrupt that would be the interrupted code's.
 * The excluded paths are looked for from the call site on, within the
 * frames of this context only.
 */
u32 mlt_pages_stack(struct mlt_table *t, unsigned long *buf)
{
	unsigned int nr, i, j, n;
	enum mlt_pg_role role;

	nr = mlt_walk_probe(buf, MLT_BUF_FRAMES);
	for (i = 0; i < nr && within_module(buf[i], THIS_MODULE); i++)
		;
	if (i < nr && mlt_pg_role_of(buf[i]) == MLT_PG_TP)
		i++;
	if (i >= nr || mlt_pg_role_of(buf[i]) != MLT_PG_ALLOC)
		goto no_call_site;
	while (i < nr && mlt_pg_role_of(buf[i]) == MLT_PG_ALLOC)
		i++;
	if (i >= nr)
		goto no_call_site;
	n = mlt_stack_own(buf, i, nr);
	for (j = i; j < i + min(n, 1U + MLT_PG_EXCL_FRAMES); j++) {
		role = mlt_pg_frame_role(buf, i, j);
		if (role != MLT_PG_NONE && role != MLT_PG_ALLOC) {
			this_cpu_inc(mlt_pg_excluded[role]);
			return MLT_SKIP;
		}
	}
	return mlt_stack_record(t, buf, i, n, MLT_KIND_PAGES);

no_call_site:
	this_cpu_inc(mlt_pg_excluded[MLT_PG_NONE]);
	return MLT_SKIP;
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

/* Symbols looked up: every name with each suffix, at most. */
#define MLT_PG_LOOKUPS	ARRAY_SIZE(mlt_pg_ranges)
#define MLT_PG_SYM_LEN	64

struct mlt_pg_lookup {
	struct kprobe kp;
	char sym[MLT_PG_SYM_LEN];
};

/*
 * Look the symbol of lk up (a kprobe: registered, it goes into regd[*nr])
 * and add its range, if it exists.
 */
static void mlt_pg_add(struct mlt_pg_lookup *lk, enum mlt_pg_role role,
		       struct kprobe **regd, unsigned int *nr)
{
	unsigned long start, end;

	lk->kp.symbol_name = lk->sym;
	/* Resolved and checked, never armed: no text is patched. */
	lk->kp.flags = KPROBE_FLAG_DISABLED;
	if (!register_kprobe(&lk->kp))
		regd[(*nr)++] = &lk->kp;
	/* A kprobe refused on a function that exists has its address. */
	if (!lk->kp.addr ||
	    mlt_vm_func_range((unsigned long)lk->kp.addr, &start, &end))
		return;
	mlt_pg_ranges[mlt_pg_nr_ranges].start = start;
	mlt_pg_ranges[mlt_pg_nr_ranges].end = end;
	mlt_pg_ranges[mlt_pg_nr_ranges].role = role;
	mlt_pg_nr_ranges++;
}

/*
 * The ranges of mlt_pg_names: each name's address from a kprobe's symbol
 * lookup (disabled probes, removed at once, in one grace period), its
 * extent from "%pS"; and those of its split-off parts and clones.
 */
static void mlt_pg_resolve(void)
{
	struct mlt_pg_lookup *lks;
	struct kprobe **regd;
	unsigned int i, k, n = 0, nr = 0;

	mlt_pg_nr_ranges = 0;
	lks = kvcalloc(MLT_PG_LOOKUPS, sizeof(*lks), GFP_KERNEL);
	regd = kcalloc(MLT_PG_LOOKUPS, sizeof(*regd), GFP_KERNEL);
	if (!lks || !regd)
		goto out;
	for (i = 0; i < ARRAY_SIZE(mlt_pg_names); i++) {
		for (k = 0; k < MLT_PG_SUFFIXES; k++) {
			struct mlt_pg_lookup *lk = &lks[n++];

			snprintf(lk->sym, sizeof(lk->sym), "%s%s",
				 mlt_pg_names[i].name, mlt_pg_suffixes[k]);
			mlt_pg_add(lk, mlt_pg_names[i].role, regd, &nr);
		}
	}
	if (nr)
		unregister_kprobes(regd, nr);
out:
	kfree(regd);
	kvfree(lks);
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
		[MLT_PG_TP] = NULL,
		[MLT_PG_ALLOC] = NULL,
		[MLT_PG_SLAB] = "pages_excluded_slab",
		[MLT_PG_KLARGE] = "pages_excluded_kmalloc_large",
		[MLT_PG_VMALLOC] = "pages_excluded_vmalloc",
		[MLT_PG_PAGECACHE] = "pages_excluded_page_cache",
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
