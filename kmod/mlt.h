/* SPDX-License-Identifier: GPL-2.0 */
/*
 * MLT: shared definitions of the MLT (Memory Leak Tracking) module.
 *
 * Locking and contexts (details in mlt_core.c):
 *  - mlt_table is published with RCU. Probes run with preemption disabled
 *    (tracepoint and kprobe handlers), read it with rcu_dereference_sched()
 *    and never sleep or allocate. Control paths replace or clear it under
 *    mlt_ctl_lock after synchronize_rcu().
 *  - Object buckets are guarded by MLT_STRIPES raw spinlocks taken with
 *    interrupts disabled; each stripe owns a slice of the object pool.
 *  - Stack records: lock-free lookup, insertion and reuse under stack_lock.
 *    A record is pinned (refs) by each live object and by each probe that
 *    is about to enter one; only an unpinned record is reused, and only
 *    while no reader is building a report (mlt_core.c).
 */
#ifndef _MLT_H
#define _MLT_H

#include <linux/types.h>
#include <linux/bits.h>
#include <linux/atomic.h>
#include <linux/spinlock.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/prandom.h>
#include <linux/hash.h>
#include <linux/rcupdate.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <linux/string.h>

/* Limits. Every one of them is named here or is a module parameter. */
#define MLT_MAX_DEPTH		32	/* frames kept per stack */
#define MLT_TRIM_SLACK		12	/* frames captured above the call site */
#define MLT_BUF_FRAMES		(MLT_MAX_DEPTH + MLT_TRIM_SLACK)
#define MLT_FALLBACK_SKIP	2	/* frames skipped when call_site is absent */
#define MLT_STRIPES		64	/* object bucket locks, power of two */
#define MLT_NIL			U32_MAX	/* "no index" in pool links */
#define MLT_SKIP		(U32_MAX - 1) /* "not tracked": this module's */
#define MLT_W_SHIFT		10	/* weights are fixed point, 1/1024 */
#define MLT_W_ONE		BIT_ULL(MLT_W_SHIFT)
#define MLT_SAMPLE_BYTES_MAX	BIT(30)
#define MLT_DEFAULT_SAMPLE_BYTES 65536
#define MLT_DEFAULT_DEPTH	16
#define MLT_DEFAULT_RAM_DIV	256	/* default cap: 1/256 of RAM */
#define MLT_MIN_CAP_KB		256	/* floor of the default cap */
#define MLT_DEFAULT_MAX_STACKS	4096
#define MLT_REUSE_SCAN		64	/* records looked at per reuse attempt */
#define MLT_STEAL_BATCH		16	/* free entries a stripe takes from another */
#define MLT_FROZEN_TEXT		(32 * 1024) /* frame text of unloaded modules' stacks */
#define MLT_REF_DEAD		(-1)	/* stack record refs: being reused */
#define MLT_STACK_SHARE_DIV	4	/* auto: at most 1/4 of the cap on stacks */
#define MLT_LEGACY_TOP		20	/* rows in mem_leaks */
#define MLT_OOM_TOP		10	/* stacks printed on OOM */
#define MLT_OOM_FRAMES		8	/* frames printed per stack on OOM */
#define MLT_OOM_INTERVAL_S	60	/* default: at most one OOM report per */
#define MLT_SCAN_CHUNK		256	/* default buckets per stripe lock hold */
#define MLT_SLAB_NAME_LEN	64	/* slab filter name, with NUL */
#define MLT_SNAP_CHUNK		(PAGE_SIZE / 2) /* seq_file record of a snapshot */
#define MLT_CHUNK_SHIFT		14	/* object pool chunk: 16384 entries, 384 KiB */
#define MLT_CHUNK		BIT(MLT_CHUNK_SHIFT)
#define MLT_LAZY_CHUNKS		1U	/* sampled mode: chunks allocated at first */
#define MLT_SCHUNK_SHIFT	8	/* stack table chunk: 256 records */
#define MLT_SCHUNK		BIT(MLT_SCHUNK_SHIFT)
#define MLT_LAZY_SCHUNKS	1U	/* sampled mode: stack chunks at first */
#define MLT_SAMPLED_MARGIN	2	/* sampled pool: this x RAM / sample_bytes */

/* Execution contexts that may nest on one CPU (NMI is never tracked). */
enum mlt_ctx { MLT_CTX_TASK, MLT_CTX_SOFTIRQ, MLT_CTX_HARDIRQ, MLT_NR_CTX };

enum mlt_mode { MLT_MODE_FULL, MLT_MODE_SAMPLED };

/* What memory a record's objects are (FORMAT.md "kind"); part of its key. */
enum mlt_kind { MLT_KIND_SLAB, MLT_KIND_PAGES, MLT_KIND_VMALLOC, MLT_NR_KINDS };

#define MLT_F_SAMPLED	BIT(0)	/* mode == MLT_MODE_SAMPLED */
#define MLT_F_SLAB	BIT(1)	/* slab name filter set */
#define MLT_F_LAZY	BIT(2)	/* object pool still grows (sampled mode) */

/* Per-CPU event counters, summed when read. */
enum mlt_counter {
	MLT_C_TRACKED,		/* allocations entered into the table */
	MLT_C_DROP_POOL,	/* object pool (stripe slice) was empty */
	MLT_C_DROP_STACKS,	/* stack table full, nothing reusable */
	MLT_C_STACKS_REUSED,	/* records of freed stacks given new stacks */
	MLT_C_UNTRACKED_FREES,
	MLT_C_MISSED_FREES,
	MLT_C_RECURSION,	/* probe re-entered in the same context */
	MLT_C_TRIM_FALLBACK,	/* call_site not found in the stack */
	MLT_C_BULK_FREES,	/* objects seen by the free_bulk kprobe */
	MLT_C_TRACE_HITS,	/* stacks known from a checked cached trace */
	MLT_C_TRACE_LEARNT,	/* traces learnt */
	MLT_C_UNWIND_COMPLETE,	/* stacks walked from the probe */
	MLT_C_UNWIND_STALE,	/* learnt call-site distances that failed */
	MLT_C_SLOW_NS,		/* time in the tracking slow path */
	MLT_C_SLOW_CALLS,
	MLT_C_VERIFY_CHECKS,	/* verify=1: stacks compared with the kernel's */
	MLT_C_VERIFY_MISMATCHES,	/* ... and found different */
	MLT_NR_COUNTERS
};

/* One tracked object: 24 bytes. */
struct mlt_obj {
	unsigned long ptr;
	u32 next;		/* next in bucket or free list */
	u32 stack;		/* index into mlt_table.stacks */
	u32 size;		/* bytes requested, clamped to U32_MAX */
	u32 asize;		/* bytes allocated (slab object size), clamped */
};

/*
 * One distinct stack: 40 bytes, plus depth frames in the frame pool. seq
 * is odd while the record is rewritten for another stack and changes with
 * every reuse; refs counts live objects and pins, MLT_REF_DEAD while the
 * record is being reused.
 */
struct mlt_stack {
	u32 hash;
	u32 next;		/* next in stack bucket */
	u32 seq;
	u16 nr;			/* number of frames */
	u16 kind;		/* enum mlt_kind */
	atomic_t refs;
	u32 frozen;		/* 1 + offset of its frames' text, 0: none */
	atomic64_t allocs_w;	/* weighted allocation count */
	atomic64_t frees_w;	/* weighted free count */
};

/* Read-side aggregate per stack, filled under mlt_ctl_lock. */
struct mlt_agg {
	u64 bytes_w;
	u64 abytes_w;		/* allocated bytes (asize) */
	u64 objects_w;
};

/*
 * A learnt stack (mlt_unwind.c): the return addresses of stack record sidx
 * sit at fixed offsets above the call site's stack pointer. 88 bytes.
 */
#define MLT_TRACE_WAYS	4	/* traces per set */
#define MLT_TRACE_PROBES	4U	/* consecutive sets one call site may use */
enum mlt_trace_end {
	MLT_TRACE_DEPTH,	/* cut at the depth limit */
	MLT_TRACE_END,		/* the last frame ends every stack */
	MLT_TRACE_USER,		/* the user registers follow the last frame */
	MLT_TRACE_ENTRY,	/* same; the last frame is the entry code's */
};

struct mlt_trace {
	u32 seq;		/* odd while being rewritten */
	u32 sidx;		/* stack record */
	u32 sseq;		/* the record's seq: it was not reused since */
	u32 site;		/* low 32 bits of the call site; 0: empty */
	u8 nr;			/* frames, as in the stack record */
	u8 end;			/* enum mlt_trace_end: how the walk stopped */
	u8 bp_in_reg;		/* _ENTRY: take %rbp, not the bp_off slot */
	u8 unused;
	u16 regs_off;		/* _USER: user registers - sp0;
				 * _ENTRY: user registers - %rbp of frame nr-2
				 */
	s16 bp_off;		/* _ENTRY: that %rbp's save slot - sp0 */
	u16 off[MLT_MAX_DEPTH];	/* slot of frame i's return address */
};

struct mlt_stripe {
	raw_spinlock_t lock;
	u32 free;		/* head of this stripe's free list */
	u32 used;
} ____cacheline_aligned_in_smp;

/*
 * All tracking state of one configuration. Replaced as a whole on reset,
 * so the probes see consistent parameters.
 */
struct mlt_table {
	u32 flags;		/* MLT_F_*: the fast path tests one word */
	enum mlt_mode mode;
	u32 sample_bytes;
	u32 depth;
	u32 max_objects;	/* multiple of MLT_STRIPES */
	u32 obj_bits;		/* log2 of the number of object buckets */
	u32 max_stacks;
	u32 stack_bits;
	char slab[MLT_SLAB_NAME_LEN];	/* cache name filter, "" = all */
	char slab_key[MLT_SLAB_NAME_LEN];	/* what it compares (sysfs name) */

	struct mlt_stripe stripes[MLT_STRIPES];
	/*
	 * The object pool: max_chunks chunks of MLT_CHUNK entries (the last
	 * one shorter), all within the cap. All are allocated when the table
	 * is built in full mode; in sampled mode MLT_LAZY_CHUNKS, and a work
	 * item adds one (mlt_ctl_lock) when obj_used reaches grow_at. Entries
	 * are reached only through buckets and free lists, under stripe locks
	 * taken after their chunk was published.
	 */
	struct mlt_obj **chunks;
	u32 nr_chunks;		/* allocated; mlt_ctl_lock */
	u32 max_chunks;
	u32 grow_at;		/* MLT_F_LAZY: grow when obj_used reaches it */
	atomic_t obj_used;	/* MLT_F_LAZY (cleared once all chunks are in): entries in use */
	u32 *buckets;

	raw_spinlock_t stack_lock;
	u32 nr_stacks;		/* written under stack_lock */
	u32 reuse_hand;		/* next record to look at for reuse; stack_lock */
	u32 readers;		/* reports being built: no reuse; stack_lock */
	/*
	 * Stack records in chunks of MLT_SCHUNK (max_schunks, the last one
	 * shorter), each one vmalloc area: schunk_len records, then their
	 * aggregates, then depth frames per record (mlt_stk(),
	 * mlt_stack_agg(), mlt_stack_frames()). Full mode allocates all when
	 * the table is built; sampled mode MLT_LAZY_SCHUNKS, and the grow
	 * work adds one when nr_stacks reaches stack_grow_at. A chunk pointer
	 * is written before stacks_alloc covers it, both under stack_lock;
	 * records are created only below stacks_alloc.
	 */
	void **schunks;
	u32 schunk_len;		/* records per chunk: min(MLT_SCHUNK, max_stacks) */
	u32 nr_schunks;		/* allocated; mlt_ctl_lock */
	u32 max_schunks;
	u32 stacks_alloc;	/* records in allocated chunks; stack_lock */
	u32 stack_grow_at;	/* grow when nr_stacks reaches it; stack_lock */
	u32 *stack_buckets;
	/*
	 * Records with frames in a module that went away keep their frames
	 * as text (mlt_report.c), one line per frame; append-only until the
	 * table is rebuilt, written under mlt_ctl_lock.
	 */
	char *frozen_text;
	u32 frozen_len;
	u32 nr_frozen;

	raw_spinlock_t trace_lock;	/* serialises trace writers */
	u32 trace_clock;	/* round-robin victim among a call site's sets */
	u32 trace_bits;		/* log2 of the number of trace sets */
	struct mlt_trace *traces;	/* NULL where not used (no ORC) */

	u64 gen;		/* tells this table from one built later */
	size_t bytes;		/* memory this table may hold (within the cap) */
	size_t bytes_alloc;	/* memory it holds now; mlt_ctl_lock */
	u64 reset_ns;
	/* Reader scans (mlt_ctl_lock): longest interrupts-off section. */
	u64 scan_max_ns;	/* since the table was built */
	u64 scan_last_ns;	/* in the last scan */
	u32 scan_last_holds;	/* lock holds in the last scan */
};

struct mlt_pcpu {
	struct rnd_state rnd;
	u8 busy[MLT_NR_CTX];
	unsigned long buf[MLT_NR_CTX][MLT_BUF_FRAMES];
	u64 cnt[MLT_NR_COUNTERS];
};

/* mlt_core.c */
extern struct mlt_table __rcu *mlt_table;
extern struct mutex mlt_ctl_lock;
extern struct mlt_pcpu __percpu *mlt_pcpu;
extern bool mlt_enable;
extern bool mlt_verify;
extern unsigned long mlt_gate;
extern bool mlt_bulk_probe_ok;
extern unsigned long mlt_cap_bytes;
extern unsigned int mlt_min_size;
extern unsigned int mlt_scan_chunk;

bool mlt_untrack(unsigned long ptr, u32 b);
void mlt_free_slow(unsigned long ptr, u32 b);
s64 mlt_next_interval(struct rnd_state *rnd, u32 mean);
int mlt_reset_locked(void);
u64 mlt_weight(const struct mlt_table *t, u32 size);
u64 mlt_counter_sum(enum mlt_counter c);
void mlt_aggregate(struct mlt_table *t, u64 *objects, u64 *bytes, u64 *abytes);
u32 mlt_stack_get(struct mlt_table *t, const unsigned long *f, u32 nr,
		  u32 kind);
struct mlt_table *mlt_alloc_enter(size_t size, unsigned long call_site,
				  u32 kind, u32 *sidx);
void mlt_alloc_leave(struct mlt_table *t, u64 gen, u32 sidx,
		     unsigned long ptr, size_t size, size_t asize);
bool mlt_stack_pin(struct mlt_table *t, u32 sidx);
void mlt_stack_put(struct mlt_table *t, u32 sidx);
void mlt_readers_enter(struct mlt_table *t);
void mlt_readers_exit(struct mlt_table *t);
bool mlt_stack_freeze(struct mlt_table *t, u32 sidx, u32 text_off);

static inline struct mlt_obj *mlt_obj(const struct mlt_table *t, u32 i)
{
	return &t->chunks[i >> MLT_CHUNK_SHIFT][i & (MLT_CHUNK - 1)];
}

/* Stack record sidx (< nr_stacks, or read from a published index). */
static inline struct mlt_stack *mlt_stk(const struct mlt_table *t, u32 sidx)
{
	struct mlt_stack *c = READ_ONCE(t->schunks[sidx >> MLT_SCHUNK_SHIFT]);

	return c + (sidx & (MLT_SCHUNK - 1));
}

static inline struct mlt_agg *mlt_stack_agg(const struct mlt_table *t, u32 sidx)
{
	char *c = READ_ONCE(t->schunks[sidx >> MLT_SCHUNK_SHIFT]);

	return (struct mlt_agg *)(c + t->schunk_len * sizeof(struct mlt_stack)) +
	       (sidx & (MLT_SCHUNK - 1));
}

static inline unsigned long *mlt_stack_frames(const struct mlt_table *t,
					      u32 sidx)
{
	char *c = READ_ONCE(t->schunks[sidx >> MLT_SCHUNK_SHIFT]);

	return (unsigned long *)(c + t->schunk_len * (sizeof(struct mlt_stack) +
						      sizeof(struct mlt_agg))) +
	       (size_t)(sidx & (MLT_SCHUNK - 1)) * t->depth;
}

/* mlt_probes.c: the only place that knows kernel-version differences. */
int mlt_probes_register(void);
void mlt_probes_unregister(void);
bool mlt_slab_filter_supported(void);
int mlt_slab_key(const char *name, char *key, size_t size);

/* mlt_vmalloc.c: the vmalloc/vfree probes. */
extern bool mlt_vmalloc_probe_ok;
int mlt_vmalloc_register(void);
void mlt_vmalloc_unregister(void);
unsigned long mlt_vmalloc_missed(void);
int mlt_vm_func_range(unsigned long addr, unsigned long *start,
		      unsigned long *end);

/* mlt_pages.c: the page allocator's tracepoints. */
struct seq_file;
extern bool mlt_pages_probe_ok;
int mlt_pages_register(void);
void mlt_pages_unregister(void);
u32 mlt_pages_stack(struct mlt_table *t, unsigned long *buf);
void mlt_pages_stats(struct seq_file *m);

static __always_inline void mlt_count(enum mlt_counter c, u64 n)
{
	this_cpu_add(mlt_pcpu->cnt[c], n);
}

/*
 * The probe fast path, inlined into each tracepoint probe. It is what every
 * kmalloc/kfree pays, so it stays next to the cost of a counting probe:
 * an allocation is one per-CPU subtract and test (in full mode the
 * countdown stays <= 0, so every allocation takes the slow path); a free
 * is one hash and one bucket peek. Everything else is in mlt_core.c.
 */
DECLARE_PER_CPU(s64, mlt_until_sample);
/* This CPU's instance of a per-CPU variable, as an asm operand. */
#ifdef __my_cpu_var
#define MLT_MY_CPU_VAR(v)	__my_cpu_var(v)	/* 6.8+: named address space */
#else
#define MLT_MY_CPU_VAR(v)	(v)
#endif
DECLARE_PER_CPU(u64, mlt_untracked_frees);
/*
 * What a free needs, in one word (one load, consistent by itself): the
 * table's buckets (page aligned) | the hash shift, 64 - obj_bits. While no
 * table is published, MLT_FAST_NONE: two empty buckets (shift 63), so
 * that the free path needs no test for it; never 0.
 */
extern unsigned long mlt_obj_fast;
extern const u32 mlt_no_buckets[2];
#define MLT_FAST_SHIFT_MASK	63UL
#define MLT_FAST_NONE	((unsigned long)mlt_no_buckets + MLT_FAST_SHIFT_MASK)

/*
 * Object bucket of ptr: hash_long(ptr, 64 - shift), written out. Below
 * 2^32 (shift >= 32); an unsigned long, so that the free path indexes the
 * buckets with it as it is.
 */
static __always_inline unsigned long mlt_obj_hash(unsigned long ptr,
						  unsigned int shift)
{
	return (u64)ptr * GOLDEN_RATIO_64 >> shift;
}

static inline u32 mlt_obj_bucket(const struct mlt_table *t, unsigned long ptr)
{
	return mlt_obj_hash(ptr, 64 - t->obj_bits);
}

/*
 * Take n bytes off this CPU's sampling countdown: true while it stays
 * above zero. Callers run with preemption disabled; one instruction on
 * x86_64 (a memory clobber, as this_cpu_sub_return(), so that the slow
 * path's loads are not hoisted above it), so an interrupt sees the
 * countdown before or after it; elsewhere this_cpu_sub_return().
 */
static __always_inline bool mlt_countdown(size_t n)
{
#if defined(CONFIG_X86_64) && defined(CONFIG_SMP) && defined(CC_SET)
	bool above;

	asm volatile("subq %[n], " __percpu_arg([v]) CC_SET(g)
		     : CC_OUT(g) (above), [v] "+m" (MLT_MY_CPU_VAR(mlt_until_sample))
		     : [n] "re" ((s64)n) : "memory");
	return above;
#else
	return this_cpu_sub_return(mlt_until_sample, n) > 0;
#endif
}

void mlt_alloc_slow(const void *ptr, size_t size, size_t asize,
		    unsigned long call_site, const char *cache_name);

/*
 * size: bytes requested (what sampling counts); asize: bytes allocated (the
 * slab object size), 0 when the probe cannot tell: then the slow path asks
 * ksize() for a tracked object.
 */
static __always_inline void mlt_on_alloc(const void *ptr, size_t size,
					 size_t asize, unsigned long call_site,
					 const char *cache_name)
{
	if (likely(mlt_countdown(size)))
		return;
	mlt_alloc_slow(ptr, size, asize, call_site, cache_name);
}

/*
 * The free fast path of every kind: one load, one hash, one bucket peek,
 * one branch. count (a constant at each call site): a free of an object
 * not tracked counts in untracked_frees (not for pages: most are user and
 * page-cache pages, never tracked); kfree(NULL) and kfree(ZERO_SIZE_PTR)
 * free nothing and add 0.
 */
static __always_inline void mlt_on_free_counted(const void *ptr, bool count)
{
	unsigned long fast, b;
	u64 counted = !ZERO_OR_NULL_PTR(ptr);

	/*
	 * Pairs with the release in mlt_reset_locked(); the bucket load
	 * depends on the address read, as with rcu_dereference().
	 */
	fast = READ_ONCE(mlt_obj_fast);
	b = mlt_obj_hash((unsigned long)ptr, fast & MLT_FAST_SHIFT_MASK);
	if (likely(READ_ONCE(((u32 *)(fast & ~MLT_FAST_SHIFT_MASK))[b]) == MLT_NIL)) {
		if (count)
			this_cpu_add(mlt_untracked_frees, counted);
		return;
	}
	if (count)
		mlt_free_slow((unsigned long)ptr, b);
	else
		mlt_untrack((unsigned long)ptr, b);
}

static __always_inline void mlt_on_free(const void *ptr)
{
	mlt_on_free_counted(ptr, true);
}

/* mlt_unwind.c */
u32 mlt_stack_of(struct mlt_table *t, unsigned long *buf,
		 unsigned long call_site, u32 kind);
void mlt_verify_stack(struct mlt_table *t, unsigned long *buf,
		      unsigned long call_site, u32 sidx);
unsigned int mlt_walk_probe(unsigned long *buf, unsigned int max);
unsigned int mlt_stack_own(const unsigned long *buf, unsigned int start,
			   unsigned int nr);
u32 mlt_stack_record(struct mlt_table *t, unsigned long *buf,
		     unsigned int start, unsigned int n, u32 kind);
size_t mlt_trace_mem(u32 traces);
size_t mlt_unwind_static_mem(void);
int mlt_unwind_init(void);
void mlt_unwind_exit(void);

/* mlt_report.c */
int mlt_report_init(void);
void mlt_report_exit(void);

#endif /* _MLT_H */
