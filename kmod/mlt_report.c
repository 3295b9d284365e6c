// SPDX-License-Identifier: GPL-2.0
/*
 * MLT: debugfs reports (stacks, mem_leaks, stats, reset) and the
 * OOM report.
 *
 * Locking and contexts:
 *  - Everything here runs in process context. A report is built completely
 *    when its file is opened, under mlt_ctl_lock (which keeps the table alive
 *    and gives mlt_aggregate() sole use of the table's aggregate array), into
 *    a text buffer of exactly its length (measured by a first pass); reads
 *    then page through that snapshot with seq_file, so every read of one
 *    open file sees the same report. Allocation here is read-side and
 *    transient, never on the probe path; it is counted (report_bytes in
 *    stats) and bounded by the stack table (README), not held within the
 *    cap.
 *  - The OOM notifier runs with oom_lock held, on every out_of_memory()
 *    call: it only counts, and at most once per oom_interval_s queues
 *    mlt_oom_work (a lock-free cmpxchg on the next allowed time). The work
 *    item takes the snapshot in process context like a report, under
 *    mlt_ctl_lock, without allocating (the preallocated aggregate array),
 *    and prints at most MLT_OOM_TOP stacks of MLT_OOM_FRAMES frames.
 *  - A module going away (module notifier, process context): under
 *    mlt_ctl_lock, with stack reuse stopped, the records with frames in it
 *    and live objects get their frames as text (mlt_stack_freeze()).
 *  - mlt_sym, the one symbol buffer, is used under mlt_ctl_lock only.
 *  - debugfs files hold a module reference while open (fops owner), so the
 *    module cannot go away under a reader.
 */
#define pr_fmt(fmt) "mlt: " fmt

#include <linux/module.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include <linux/sort.h>
#include <linux/kallsyms.h>
#include <linux/oom.h>
#include <linux/notifier.h>
#include <linux/workqueue.h>
#include <linux/jiffies.h>
#include <linux/timekeeping.h>
#include "mlt.h"

#define MLT_FNV_OFFSET	0xcbf29ce484222325ULL
#define MLT_FNV_PRIME	0x100000001b3ULL

static struct dentry *mlt_dir;
static char mlt_sym[KSYM_SYMBOL_LEN];	/* under mlt_ctl_lock */
static atomic_t mlt_frozen_dropped;	/* frozen text pool was full */
static unsigned long mlt_oom_next;	/* jiffies: no report before */
static atomic_t mlt_oom_calls;		/* out_of_memory() calls seen */
static atomic_t mlt_oom_unreported;	/* calls since the last report */
static atomic_t mlt_oom_reports;	/* reports printed */
/* Report buffers (outside the cap, see README): held now, most ever held. */
static atomic_long_t mlt_report_bytes;
static atomic_long_t mlt_report_peak;

struct mlt_rep {
	u64 id;
	u64 bytes_w, abytes_w, objects_w, allocs_w, frees_w;
	u32 stack;
};

/* FORMAT.md "kind"; and the number kmemfleet's MemoryKind gives it (ids). */
static const char *const mlt_kind_names[MLT_NR_KINDS] = {
	[MLT_KIND_SLAB] = "slab",
	[MLT_KIND_PAGES] = "pages",
	[MLT_KIND_VMALLOC] = "vmalloc",
};

static const char mlt_kind_ids[MLT_NR_KINDS] = {
	[MLT_KIND_SLAB] = '1',
	[MLT_KIND_PAGES] = '2',
	[MLT_KIND_VMALLOC] = '3',
};

#define MLT_SOURCE_ID	'1'	/* kmemfleet's StackSource of this report */

struct mlt_snap {
	char *text;
	size_t len, cap;
	long held;		/* bytes charged to mlt_report_bytes */
	int err;
};

/* What a kvmalloc() of size takes at most: kmalloc sizes, whole pages. */
static long mlt_kv_bytes(size_t size)
{
	return size <= PAGE_SIZE ? roundup_pow_of_two(size) : PAGE_SIZE << get_order(size);
}

/* Count report buffer memory (negative: released). */
static void mlt_report_charge(long bytes)
{
	long now = atomic_long_add_return(bytes, &mlt_report_bytes);
	long peak = atomic_long_read(&mlt_report_peak);

	while (now > peak) {
		long seen = atomic_long_cmpxchg(&mlt_report_peak, peak, now);

		if (seen == peak)
			break;
		peak = seen;
	}
}

static void mlt_snap_charge(struct mlt_snap *s, long bytes)
{
	s->held += bytes;
	mlt_report_charge(bytes);
}

/*
 * A report is rendered twice from the same collected data under
 * mlt_ctl_lock: the first pass (no text yet) only measures, the second
 * writes into a buffer of exactly that length (mlt_snap_fill()), so a
 * report holds its text once, never a doubling buffer and its copy.
 */
static __printf(2, 3) void mlt_out(struct mlt_snap *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->err)
		return;
	va_start(ap, fmt);
	if (s->text)
		n = vsnprintf(s->text + s->len, s->cap - s->len, fmt, ap);
	else
		n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (s->text && s->len + n >= s->cap) {
		s->err = -EAGAIN;	/* the text changed between the passes */
		return;
	}
	s->len += n;
}

/* After the measuring pass: the text buffer; true to render again into it. */
static bool mlt_snap_fill(struct mlt_snap *s)
{
	if (s->err || s->text)
		return false;
	s->cap = s->len + 1;
	/* Not kvmalloc(): its kmalloc() try would take up to twice the pages. */
	if (s->cap <= PAGE_SIZE)
		s->text = kmalloc(s->cap, GFP_KERNEL);
	else
		s->text = vmalloc(s->cap);
	if (!s->text) {
		s->err = -ENOMEM;
		return false;
	}
	mlt_snap_charge(s, s->cap <= PAGE_SIZE ? mlt_kv_bytes(s->cap) :
			   PAGE_ALIGN(s->cap) +
			   mlt_kv_bytes(DIV_ROUND_UP(s->cap, PAGE_SIZE) * sizeof(void *)));
	s->len = 0;
	return true;
}

static u64 mlt_round(u64 w)
{
	return (w + MLT_W_ONE / 2) >> MLT_W_SHIFT;
}

static const unsigned long *mlt_frames(const struct mlt_table *t, u32 stack)
{
	return mlt_stack_frames(t, stack);
}

/*
 * Frame j of a stack as FORMAT.md prints it: "%pB", or for a stack frozen
 * when its module went away the text it had then. Format: "%pB" or "%pS"
 * (legacy). Returns mlt_sym; caller holds mlt_ctl_lock.
 */
static const char *mlt_frame_text(const struct mlt_table *t, u32 stack, u32 j,
				  const char *fmt)
{
	u32 fz = READ_ONCE(mlt_stk(t, stack)->frozen);
	const char *p, *e;

	lockdep_assert_held(&mlt_ctl_lock);
	if (!fz) {
		snprintf(mlt_sym, sizeof(mlt_sym), fmt, (void *)mlt_frames(t, stack)[j]);
		return mlt_sym;
	}
	for (p = t->frozen_text + fz - 1; j; j--)
		p = strchr(p, '\n') + 1;
	e = strchr(p, '\n');
	memcpy(mlt_sym, p, e - p);
	mlt_sym[e - p] = '\0';
	return mlt_sym;
}

static u64 mlt_fnv(u64 h, const char *c, size_t n)
{
	while (n--)
		h = (h ^ (u8)*c++) * MLT_FNV_PRIME;
	return h;
}

/*
 * FNV-1a 64 over each "%pB" frame text followed by '\n'; for kinds other
 * than slab, then over "\0kind:<n>\0source:1\0" (see FORMAT.md).
 */
static u64 mlt_stack_id(const struct mlt_table *t, u32 stack)
{
	u32 i, kind = mlt_stk(t, stack)->kind;
	char tail[] = "\0kind:?\0source:?";	/* and its own NUL */
	const char *c;
	u64 h = MLT_FNV_OFFSET;

	for (i = 0; i < mlt_stk(t, stack)->nr; i++) {
		c = mlt_frame_text(t, stack, i, "%pB");
		h = mlt_fnv(h, c, strlen(c));
		h = mlt_fnv(h, "\n", 1);
	}
	if (kind == MLT_KIND_SLAB || kind >= MLT_NR_KINDS)
		return h;
	tail[6] = mlt_kind_ids[kind];
	tail[15] = MLT_SOURCE_ID;
	return mlt_fnv(h, tail, sizeof(tail));
}

static int mlt_cmp_id(const void *a, const void *b)
{
	const struct mlt_rep *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int mlt_cmp_bytes(const void *a, const void *b)
{
	const struct mlt_rep *x = a, *y = b;

	if (x->bytes_w != y->bytes_w)
		return x->bytes_w > y->bytes_w ? -1 : 1;
	return mlt_cmp_id(a, b);
}

/*
 * Collect the stacks with outstanding objects, merged by id and sorted by
 * bytes, into *out (NULL if none), the bytes it holds charged to the
 * report memory (*held; mlt_reps_free() releases). Caller holds
 * mlt_ctl_lock. Returns the number of entries.
 */
static int mlt_collect(struct mlt_table *t, struct mlt_rep **out, long *held,
		       u64 *tobjects, u64 *tbytes, u64 *tabytes)
{
	struct mlt_rep *r;
	/* Pairs with the release in mlt_stack_get(): records are complete. */
	u32 nr_stacks = smp_load_acquire(&t->nr_stacks);
	u32 i, n = 0, m;

	mlt_aggregate(t, tobjects, tbytes, tabytes);
	for (i = 0; i < nr_stacks; i++)
		if (mlt_stack_agg(t, i)->objects_w)
			n++;
	*out = NULL;
	*held = 0;
	if (!n)
		return 0;
	r = kvmalloc_array(n, sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	*held = mlt_kv_bytes(n * sizeof(*r));
	mlt_report_charge(*held);
	for (i = 0, n = 0; i < nr_stacks; i++) {
		if (!mlt_stack_agg(t, i)->objects_w)
			continue;
		r[n].stack = i;
		r[n].id = mlt_stack_id(t, i);
		r[n].bytes_w = mlt_stack_agg(t, i)->bytes_w;
		r[n].abytes_w = mlt_stack_agg(t, i)->abytes_w;
		r[n].objects_w = mlt_stack_agg(t, i)->objects_w;
		r[n].allocs_w = atomic64_read(&mlt_stk(t, i)->allocs_w);
		r[n].frees_w = atomic64_read(&mlt_stk(t, i)->frees_w);
		n++;
	}

	/* Raw stacks that symbolize alike are one stack to userspace. */
	sort(r, n, sizeof(*r), mlt_cmp_id, NULL);
	for (i = 1, m = 0; i < n; i++) {
		if (r[i].id == r[m].id) {
			r[m].bytes_w += r[i].bytes_w;
			r[m].abytes_w += r[i].abytes_w;
			r[m].objects_w += r[i].objects_w;
			r[m].allocs_w += r[i].allocs_w;
			r[m].frees_w += r[i].frees_w;
		} else {
			r[++m] = r[i];
		}
	}
	n = m + 1;
	sort(r, n, sizeof(*r), mlt_cmp_bytes, NULL);
	*out = r;
	return n;
}

static void mlt_reps_free(struct mlt_rep *r, long held)
{
	kvfree(r);
	mlt_report_charge(-held);
}

static const char *const mlt_mode_names[] = {
	[MLT_MODE_FULL] = "full",
	[MLT_MODE_SAMPLED] = "sampled",
};

static void mlt_render_stacks(struct mlt_snap *s)
{
	struct mlt_table *t;
	struct mlt_rep *r = NULL;
	u64 tobj = 0, tbytes = 0, tabytes = 0, dropped, untracked, missed, now;
	long held = 0;
	int n = 0, i, bulk, pg, vm;
	u32 j;

	t = rcu_dereference_protected(mlt_table, lockdep_is_held(&mlt_ctl_lock));
	if (t) {
		mlt_readers_enter(t);
		n = mlt_collect(t, &r, &held, &tobj, &tbytes, &tabytes);
		if (n < 0) {
			mlt_readers_exit(t);
			s->err = n;
			return;
		}
	}
	/* Both passes print the same numbers. */
	dropped = mlt_counter_sum(MLT_C_DROP_POOL) + mlt_counter_sum(MLT_C_DROP_STACKS);
	untracked = mlt_counter_sum(MLT_C_UNTRACKED_FREES);
	missed = mlt_counter_sum(MLT_C_MISSED_FREES);
	now = ktime_get_boottime_ns();
	bulk = READ_ONCE(mlt_bulk_probe_ok);
	pg = READ_ONCE(mlt_pages_probe_ok);
	vm = READ_ONCE(mlt_vmalloc_probe_ok);
	do {
		mlt_out(s, "mlt - version: 1.2\n");
		/* One header line, keys in the order of FORMAT.md. */
		mlt_out(s, "# mode %s sample_bytes %u depth %u",
			t ? mlt_mode_names[t->mode] : "none", t ? t->sample_bytes : 0,
			t ? t->depth : 0);
		mlt_out(s, " tracked_objects %llu tracked_bytes %llu stacks %d", tobj, tbytes, n);
		mlt_out(s, " dropped %llu untracked_frees %llu missed_frees %llu",
			dropped, untracked, missed);
		mlt_out(s, " uptime_ns %llu", now);
		/* 1.1: 0 when kfree_rcu() frees go unseen (their objects look leaked). */
		mlt_out(s, " bulk_free_probe %d", bulk);
		/* 1.2: allocated bytes of the held objects; the kinds tracked. */
		mlt_out(s, " tracked_alloc_bytes %llu kinds %s%s%s\n", tabytes,
			mlt_kind_names[MLT_KIND_SLAB], pg ? ",pages" : "",
			vm ? ",vmalloc" : "");
		for (i = 0; i < n; i++) {
			mlt_out(s, "stack %016llx bytes %llu objects %llu allocs %llu frees %llu\n",
				r[i].id, mlt_round(r[i].bytes_w), mlt_round(r[i].objects_w),
				mlt_round(r[i].allocs_w), mlt_round(r[i].frees_w));
			for (j = 0; j < mlt_stk(t, r[i].stack)->nr; j++)
				mlt_out(s, " %s\n", mlt_frame_text(t, r[i].stack, j, "%pB"));
			/* 1.2: the record's facts, a line a 1.1 reader takes for a frame. */
			mlt_out(s, " = kind %s alloc_bytes %llu\n\n",
				mlt_kind_names[mlt_stk(t, r[i].stack)->kind],
				mlt_round(r[i].abytes_w));
		}
	} while (mlt_snap_fill(s));
	if (t)
		mlt_readers_exit(t);
	mlt_reps_free(r, held);
}

/* ---- legacy Brocade MLT layout ----------------------------------------- */

/* Allocator wrappers skipped when choosing the one frame to show. */
static const char *const mlt_wrappers[] = {
	"__kmalloc", "__kmalloc_node", "__kmalloc_node_track_caller",
	"kmalloc_trace", "kmalloc_node_trace", "kmalloc_large",
	"kmalloc_large_node", "__kmalloc_noprof", "__kmalloc_node_noprof",
	"__kmalloc_cache_noprof", "__kmalloc_cache_node_noprof",
	"__kmalloc_node_track_caller_noprof", "__kmalloc_large_noprof",
	"__kmalloc_large_node_noprof", "kvmalloc_node", "__kvmalloc_node",
	"__kvmalloc_node_noprof", "kmem_cache_alloc", "kmem_cache_alloc_node",
	"kmem_cache_alloc_lru", "kmem_cache_alloc_noprof",
	"kmem_cache_alloc_node_noprof", "kmem_cache_alloc_lru_noprof",
	"kstrdup", "kstrndup", "kstrdup_const", "kmemdup", "kmemdup_nul",
	"kmemdup_noprof", "krealloc", "krealloc_noprof", "__alloc_skb",
	"kmalloc_reserve", "alloc_skb_with_frags",
};

static bool mlt_is_wrapper(const char *sym)
{
	size_t len = strcspn(sym, "+");
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mlt_wrappers); i++)
		if (strlen(mlt_wrappers[i]) == len && !strncmp(sym, mlt_wrappers[i], len))
			return true;
	return false;
}

/*
 * First module frame, else first frame that is not an allocator wrapper,
 * as "%pS" text (in mlt_sym).
 */
static const char *mlt_legacy_frame(const struct mlt_table *t, u32 stack)
{
	u32 i, nr = mlt_stk(t, stack)->nr;

	for (i = 0; i < nr; i++)
		if (strstr(mlt_frame_text(t, stack, i, "%pS"), " ["))
			return mlt_sym;
	for (i = 0; i < nr; i++)
		if (!mlt_is_wrapper(mlt_frame_text(t, stack, i, "%pS")))
			return mlt_sym;
	return mlt_frame_text(t, stack, 0, "%pS");
}

/* The digit after the point is the first digit of the remainder. */
static int mlt_first_digit(u64 r)
{
	while (r >= 10)
		r /= 10;
	return r;
}

static void mlt_render_legacy(struct mlt_snap *s)
{
	struct mlt_table *t;
	struct mlt_rep *r = NULL;
	u64 tobj = 0, tbytes = 0, tabytes = 0, objs = 0, bytes = 0;
	long held = 0;
	int n = 0, i, k;

	t = rcu_dereference_protected(mlt_table, lockdep_is_held(&mlt_ctl_lock));
	if (t) {
		mlt_readers_enter(t);
		n = mlt_collect(t, &r, &held, &tobj, &tbytes, &tabytes);
		if (n < 0) {
			mlt_readers_exit(t);
			s->err = n;
			return;
		}
	}
	/*
	 * The legacy layout is kmalloc's: no pages records (every process's
	 * page tables would crowd the slab leaks out of the top rows).
	 */
	for (i = 0, k = 0; i < n; i++)
		if (mlt_stk(t, r[i].stack)->kind != MLT_KIND_PAGES)
			r[k++] = r[i];
	n = k;
	for (i = 0; i < n; i++) {
		objs += mlt_round(r[i].objects_w);
		bytes += mlt_round(r[i].bytes_w);
	}
	do {
		mlt_out(s, "\r\nOutstanding kmalloc allocations tracked by MLT: %d \r\n",
			(int)objs);
		mlt_out(s, "Outstanding kmalloc memory tracked by MLT: ");
		if ((bytes >> 20) > 1)
			mlt_out(s, "%6d.%d MB \r\n\n", (int)(bytes >> 20),
				mlt_first_digit(bytes & ((1 << 20) - 1)));
		else if ((bytes >> 10) > 1)
			mlt_out(s, "%6d.%d KB \r\n\n", (int)(bytes >> 10),
				mlt_first_digit(bytes & ((1 << 10) - 1)));
		else
			mlt_out(s, "%6d B \r\n\n", (int)bytes);
		mlt_out(s, "Display Index   Stack Trace making the allocations");
		mlt_out(s, "                  Total Memory allocated (Alloc Count)\r\n");
		mlt_out(s, "-------------   ----------------------------------");
		mlt_out(s, "                  -----------------------\r\n");

		for (i = 0; i < n && i < MLT_LEGACY_TOP; i++) {
			const char *f = mlt_legacy_frame(t, r[i].stack);
			u64 b = mlt_round(r[i].bytes_w);
			int cnt = mlt_round(r[i].objects_w);

			if ((b >> 20) > 1)
				mlt_out(s, "%13d   %-60s  %6d.%1d MB  (%d)\n", i + 1, f,
					(int)(b >> 20), mlt_first_digit(b & ((1 << 20) - 1)), cnt);
			else if ((b >> 10) > 1)
				mlt_out(s, "%13d   %-60s  %6d.%1d KB  (%d)\n", i + 1, f,
					(int)(b >> 10), mlt_first_digit(b & ((1 << 10) - 1)), cnt);
			else
				mlt_out(s, "%13d   %-60s  %6d B  (%d)\n", i + 1, f, (int)b, cnt);
		}
	} while (mlt_snap_fill(s));
	if (t)
		mlt_readers_exit(t);
	mlt_reps_free(r, held);
}

/* ---- snapshot files ---------------------------------------------------- */

static void *mlt_snap_start(struct seq_file *m, loff_t *pos)
{
	struct mlt_snap *s = m->private;

	return (size_t)*pos * MLT_SNAP_CHUNK < s->len ? pos : NULL;
}

static void *mlt_snap_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return mlt_snap_start(m, pos);
}

static void mlt_snap_stop(struct seq_file *m, void *v)
{
}

static int mlt_snap_show(struct seq_file *m, void *v)
{
	struct mlt_snap *s = m->private;
	size_t off = (size_t)*(loff_t *)v * MLT_SNAP_CHUNK;

	seq_write(m, s->text + off, min_t(size_t, MLT_SNAP_CHUNK, s->len - off));
	return 0;
}

static const struct seq_operations mlt_snap_seq = {
	.start = mlt_snap_start,
	.next = mlt_snap_next,
	.stop = mlt_snap_stop,
	.show = mlt_snap_show,
};

static int mlt_snap_open(struct inode *inode, struct file *file,
			 void (*render)(struct mlt_snap *))
{
	struct mlt_snap *s;
	int err;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	/*
	 * This and seq_read()'s buffer, one page: records of MLT_SNAP_CHUNK
	 * (half a page) fit it with the room seq_write() wants. The text is
	 * charged when the render allocates it.
	 */
	mlt_snap_charge(s, mlt_kv_bytes(sizeof(*s)) + PAGE_SIZE);
	mutex_lock(&mlt_ctl_lock);
	render(s);
	mutex_unlock(&mlt_ctl_lock);
	err = s->err;
	if (!err)
		err = seq_open(file, &mlt_snap_seq);
	if (err) {
		mlt_report_charge(-s->held);
		kvfree(s->text);
		kfree(s);
		return err;
	}
	((struct seq_file *)file->private_data)->private = s;
	return 0;
}

static int mlt_snap_release(struct inode *inode, struct file *file)
{
	struct mlt_snap *s = ((struct seq_file *)file->private_data)->private;

	mlt_report_charge(-s->held);
	kvfree(s->text);
	kfree(s);
	return seq_release(inode, file);
}

static int mlt_stacks_open(struct inode *inode, struct file *file)
{
	return mlt_snap_open(inode, file, mlt_render_stacks);
}

static int mlt_legacy_open(struct inode *inode, struct file *file)
{
	return mlt_snap_open(inode, file, mlt_render_legacy);
}

static const struct file_operations mlt_stacks_fops = {
	.owner = THIS_MODULE,
	.open = mlt_stacks_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = mlt_snap_release,
};

static const struct file_operations mlt_legacy_fops = {
	.owner = THIS_MODULE,
	.open = mlt_legacy_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = mlt_snap_release,
};

/* ---- stats ------------------------------------------------------------- */

static const char *const mlt_counter_names[MLT_NR_COUNTERS] = {
	[MLT_C_TRACKED] = "tracked_allocs",
	[MLT_C_DROP_POOL] = "dropped_pool_full",
	[MLT_C_DROP_STACKS] = "dropped_stacks_full",
	[MLT_C_STACKS_REUSED] = "stacks_reused",
	[MLT_C_UNTRACKED_FREES] = "untracked_frees",
	[MLT_C_MISSED_FREES] = "missed_frees",
	[MLT_C_RECURSION] = "recursion_skips",
	[MLT_C_TRIM_FALLBACK] = "trim_fallbacks",
	[MLT_C_BULK_FREES] = "bulk_freed_objects",
	[MLT_C_TRACE_HITS] = "trace_hits",
	[MLT_C_TRACE_LEARNT] = "traces_learnt",
	[MLT_C_UNWIND_COMPLETE] = "unwind_complete",
	[MLT_C_UNWIND_STALE] = "unwind_site_stale",
	[MLT_C_SLOW_NS] = "slow_path_ns",
	[MLT_C_SLOW_CALLS] = "slow_path_calls",
	[MLT_C_VERIFY_CHECKS] = "verify_checks",
	[MLT_C_VERIFY_MISMATCHES] = "verify_mismatches",
};

static int mlt_stats_show(struct seq_file *m, void *v)
{
	struct mlt_table *t;
	u64 used = 0;
	u32 live;
	int c, s;

	mutex_lock(&mlt_ctl_lock);
	t = rcu_dereference_protected(mlt_table, lockdep_is_held(&mlt_ctl_lock));
	seq_printf(m, "enabled %d\n", READ_ONCE(mlt_enable));
	seq_printf(m, "cap_bytes %lu\n", mlt_cap_bytes);
	if (t) {
		for (s = 0; s < MLT_STRIPES; s++)
			used += READ_ONCE(t->stripes[s].used);
		seq_printf(m, "mode %s\n", mlt_mode_names[t->mode]);
		seq_printf(m, "sample_bytes %u\ndepth %u\n", t->sample_bytes, t->depth);
		seq_printf(m, "slab_filter %s\n", t->slab[0] ? t->slab : "-");
		seq_printf(m, "slab_filter_cache %s\n", t->slab[0] ? t->slab_key : "-");
		seq_printf(m, "pool_bytes %zu\npool_bytes_allocated %zu\n", t->bytes,
			   t->bytes_alloc);
		seq_printf(m, "obj_chunks %u\nmax_obj_chunks %u\n", t->nr_chunks,
			   t->max_chunks);
		seq_printf(m, "max_objects %u\nobjects_used %llu\n", t->max_objects, used);
		seq_printf(m, "stack_chunks %u\nmax_stack_chunks %u\nstacks_allocated %u\n",
			   t->nr_schunks, t->max_schunks, READ_ONCE(t->stacks_alloc));
		for (s = 0, live = 0; s < READ_ONCE(t->nr_stacks); s++)
			live += atomic_read(&mlt_stk(t, s)->refs) > 0;
		seq_printf(m, "max_stacks %u\nstacks_used %u\nstacks_live %u\n",
			   t->max_stacks, READ_ONCE(t->nr_stacks), live);
		seq_printf(m, "bytes_per_object %zu\n",
			   sizeof(struct mlt_obj) +
			   (sizeof(u32) << t->obj_bits) / t->max_objects);
		seq_printf(m, "bytes_per_stack %zu\n",
			   sizeof(struct mlt_stack) + sizeof(struct mlt_agg) +
			   t->depth * sizeof(unsigned long) +
			   ((sizeof(u32) << t->stack_bits) +
			    mlt_trace_mem(MLT_TRACE_WAYS << t->trace_bits)) / t->max_stacks);
		seq_printf(m, "since_reset_ns %llu\n", ktime_get_boottime_ns() - t->reset_ns);
		seq_printf(m, "stacks_frozen %u\nfrozen_text_bytes %u\n", t->nr_frozen,
			   t->frozen_len);
		seq_printf(m, "scan_max_irqoff_ns %llu\nscan_last_irqoff_ns %llu\nscan_last_lock_holds %u\n",
			   t->scan_max_ns, t->scan_last_ns, t->scan_last_holds);
	} else {
		seq_puts(m, "mode none\n");
	}
	seq_printf(m, "bulk_free_probe %d\n", mlt_bulk_probe_ok);
	seq_printf(m, "vmalloc_probe %d\nvmalloc_missed %lu\n",
		   mlt_vmalloc_probe_ok, mlt_vmalloc_missed());
	mlt_pages_stats(m);
	seq_printf(m, "oom_calls %d\noom_reports %d\n", atomic_read(&mlt_oom_calls),
		   atomic_read(&mlt_oom_reports));
	seq_printf(m, "frozen_text_full %d\n", atomic_read(&mlt_frozen_dropped));
	seq_printf(m, "report_bytes %ld\nreport_bytes_peak %ld\n",
		   atomic_long_read(&mlt_report_bytes), atomic_long_read(&mlt_report_peak));
	seq_printf(m, "slab_filter_supported %d\n", mlt_slab_filter_supported());
	for (c = 0; c < MLT_NR_COUNTERS; c++)
		seq_printf(m, "%s %llu\n", mlt_counter_names[c], mlt_counter_sum(c));
	mutex_unlock(&mlt_ctl_lock);
	return 0;
}

static int mlt_stats_open(struct inode *inode, struct file *file)
{
	return single_open(file, mlt_stats_show, NULL);
}

static const struct file_operations mlt_stats_fops = {
	.owner = THIS_MODULE,
	.open = mlt_stats_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
};

static ssize_t mlt_reset_write(struct file *file, const char __user *buf,
			       size_t count, loff_t *ppos)
{
	int err;

	mutex_lock(&mlt_ctl_lock);
	err = mlt_reset_locked();
	mutex_unlock(&mlt_ctl_lock);
	return err ? err : count;
}

static const struct file_operations mlt_reset_fops = {
	.owner = THIS_MODULE,
	.write = mlt_reset_write,
	.llseek = noop_llseek,
};

/* ---- OOM ----------------------------------------------------------------- */

static unsigned int mlt_oom_interval_s = MLT_OOM_INTERVAL_S;
module_param_named(oom_interval_s, mlt_oom_interval_s, uint, 0644);
MODULE_PARM_DESC(oom_interval_s, "At most one OOM report to the kernel log per this many seconds");

static void mlt_oom_report(struct work_struct *work)
{
	struct mlt_table *t;
	struct mlt_agg *a, *top;
	u64 tobj, tbytes, tabytes;
	u32 nr, i, j, best;
	int k;

	mutex_lock(&mlt_ctl_lock);
	t = rcu_dereference_protected(mlt_table, lockdep_is_held(&mlt_ctl_lock));
	if (!t)
		goto out;
	mlt_readers_enter(t);
	mlt_aggregate(t, &tobj, &tbytes, &tabytes);
	/* Pairs with the release in mlt_stack_get(). */
	nr = smp_load_acquire(&t->nr_stacks);
	atomic_inc(&mlt_oom_reports);
	pr_warn("OOM: %llu objects, %llu bytes tracked (%s mode), %d out_of_memory() calls since the last report; top stacks by bytes:\n",
		tobj, tbytes, mlt_mode_names[t->mode],
		atomic_xchg(&mlt_oom_unreported, 0));
	for (k = 0; k < MLT_OOM_TOP; k++) {
		best = MLT_NIL;
		top = NULL;
		for (i = 0; i < nr; i++) {
			a = mlt_stack_agg(t, i);
			if (a->bytes_w && (!top || a->bytes_w > top->bytes_w)) {
				best = i;
				top = a;
			}
		}
		if (!top)
			break;
		pr_warn("OOM: #%d bytes %llu objects %llu\n", k + 1,
			mlt_round(top->bytes_w), mlt_round(top->objects_w));
		for (j = 0; j < min_t(u32, mlt_stk(t, best)->nr, MLT_OOM_FRAMES); j++)
			pr_warn("OOM:   %s\n", mlt_frame_text(t, best, j, "%pB"));
		top->bytes_w = 0;	/* scratch: mark as printed */
	}
	mlt_readers_exit(t);
out:
	mutex_unlock(&mlt_ctl_lock);
}

static DECLARE_WORK(mlt_oom_work, mlt_oom_report);

static int mlt_oom_notify(struct notifier_block *nb, unsigned long unused,
			  void *freed)
{
	unsigned long now = jiffies, next = READ_ONCE(mlt_oom_next);

	atomic_inc(&mlt_oom_calls);
	atomic_inc(&mlt_oom_unreported);
	if (time_before(now, next) ||
	    cmpxchg(&mlt_oom_next, next,
		    now + READ_ONCE(mlt_oom_interval_s) * HZ) != next)
		return NOTIFY_OK;
	queue_work(system_unbound_wq, &mlt_oom_work);
	return NOTIFY_OK;
}

/* ---- modules going away -------------------------------------------------- */

/*
 * Text of every frame of record i, one line each, appended to the frozen
 * text. Returns its offset, or U32_MAX when the text does not fit.
 */
static u32 mlt_freeze_text(struct mlt_table *t, u32 i)
{
	u32 off = t->frozen_len, j;
	size_t len;

	for (j = 0; j < mlt_stk(t, i)->nr; j++) {
		snprintf(mlt_sym, sizeof(mlt_sym), "%pB", (void *)mlt_frames(t, i)[j]);
		len = strlen(mlt_sym);
		if (off + len + 1 > MLT_FROZEN_TEXT)
			return U32_MAX;
		memcpy(t->frozen_text + off, mlt_sym, len);
		off += len;
		t->frozen_text[off++] = '\n';
	}
	swap(off, t->frozen_len);
	return off;
}

/*
 * A module is going away (its code is done, its symbols still known):
 * records of live objects with frames in it keep those frames as text, so
 * their names and ids survive, and another module loaded at the same
 * addresses does not inherit them.
 */
static int mlt_module_going(struct notifier_block *nb, unsigned long action,
			    void *data)
{
	struct module *mod = data;
	struct mlt_table *t;
	u32 nr, i, j, off;

	if (action != MODULE_STATE_GOING)
		return NOTIFY_DONE;
	mutex_lock(&mlt_ctl_lock);
	t = rcu_dereference_protected(mlt_table, lockdep_is_held(&mlt_ctl_lock));
	if (!t)
		goto out;
	mlt_readers_enter(t);	/* records stay what they are */
	/* Pairs with the release in mlt_stack_get(). */
	nr = smp_load_acquire(&t->nr_stacks);
	for (i = 0; i < nr; i++) {
		if (READ_ONCE(mlt_stk(t, i)->frozen) ||
		    atomic_read(&mlt_stk(t, i)->refs) <= 0)
			continue;
		for (j = 0; j < mlt_stk(t, i)->nr; j++)
			if (within_module(mlt_frames(t, i)[j], mod))
				break;
		if (j == mlt_stk(t, i)->nr)
			continue;
		off = mlt_freeze_text(t, i);
		if (off == U32_MAX) {
			atomic_inc(&mlt_frozen_dropped);
			continue;
		}
		if (mlt_stack_freeze(t, i, off))
			t->nr_frozen++;
		else
			t->frozen_len = off;	/* nothing to keep: take it back */
	}
	mlt_readers_exit(t);
out:
	mutex_unlock(&mlt_ctl_lock);
	return NOTIFY_DONE;
}

static struct notifier_block mlt_module_nb = {
	.notifier_call = mlt_module_going,
};

static struct notifier_block mlt_oom_nb = {
	.notifier_call = mlt_oom_notify,
};

int mlt_report_init(void)
{
	int err;

	/*
	 * Without debugfs (CONFIG_DEBUG_FS=n, debugfs=off) tracking still runs
	 * and the OOM report still prints: say so, do not fail.
	 */
	mlt_dir = debugfs_create_dir("mlt", NULL);
	if (IS_ERR(mlt_dir)) {
		pr_warn("no debugfs (%ld): no report files, OOM report only\n",
			PTR_ERR(mlt_dir));
		mlt_dir = NULL;
	} else {
		debugfs_create_file("stacks", 0400, mlt_dir, NULL, &mlt_stacks_fops);
		debugfs_create_file("mem_leaks", 0400, mlt_dir, NULL, &mlt_legacy_fops);
		debugfs_create_file("stats", 0400, mlt_dir, NULL, &mlt_stats_fops);
		debugfs_create_file("reset", 0200, mlt_dir, NULL, &mlt_reset_fops);
	}
	mlt_oom_next = jiffies;
	err = register_oom_notifier(&mlt_oom_nb);
	if (err)
		goto out_dir;
	err = register_module_notifier(&mlt_module_nb);
	if (err)
		goto out_oom;
	return 0;

out_oom:
	unregister_oom_notifier(&mlt_oom_nb);
out_dir:
	debugfs_remove_recursive(mlt_dir);
	return err;
}

void mlt_report_exit(void)
{
	unregister_module_notifier(&mlt_module_nb);
	unregister_oom_notifier(&mlt_oom_nb);
	cancel_work_sync(&mlt_oom_work);
	debugfs_remove_recursive(mlt_dir);
}
