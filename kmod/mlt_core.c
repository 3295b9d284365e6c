// SPDX-License-Identifier: GPL-2.0
/*
 * MLT: tables, hot path, parameters and module life cycle.
 *
 * MLT accounts outstanding kmalloc/kmem_cache allocations per allocating
 * stack. Tracepoint probes (mlt_probes.c) call mlt_on_alloc() and
 * mlt_on_free(); reports are built in mlt_report.c.
 *
 * Locking and contexts:
 *  - The probes run in any context (task, softirq, hard IRQ, NMI) with
 *    preemption disabled. They never sleep and never allocate: every byte
 *    they use (object pool, stack table, frame pool, per-CPU unwind
 *    buffers) is allocated by mlt_table_alloc() when the table is built.
 *    In NMI only lock-free work is done (the sampling countdown, the bucket
 *    peek and per-CPU counters); the slow paths, which take locks, return
 *    at once.
 *  - mlt_table is an RCU-published pointer, and so is mlt_obj_fast (the
 *    same table's buckets and hash shift in one word, for the free fast
 *    path). The probes read them with rcu_dereference_sched(), and
 *    READ_ONCE() and a dependent load; mlt_reset_locked()
 *    builds the new table first (a parameter change that cannot be met
 *    leaves the old table and values in place), then unpublishes the old
 *    one, waits with synchronize_rcu() for every probe in flight, resets
 *    the per-CPU state, publishes the new table and frees the old.
 *    mlt_ctl_lock (a mutex) serialises resets, parameter changes and
 *    readers that walk the table (snapshots, OOM report). Readers hold
 *    each stripe lock for scan_chunk buckets at a time while summing, and
 *    reschedule between holds.
 *  - Object buckets: bucket b is guarded by stripes[b % MLT_STRIPES].lock,
 *    a raw spinlock taken with interrupts disabled, so a hard IRQ that
 *    allocates while its CPU holds a stripe cannot deadlock. Each stripe
 *    has its own free list (a slice of the pool at first). A stripe whose
 *    list is empty takes MLT_STEAL_BATCH entries from another's, which it
 *    only try-locks while holding its own: no lock order, no waiting.
 *    A free first peeks at the bucket head without the lock: an object
 *    being freed was entered into the table before its pointer was handed
 *    out, so an empty bucket means "not tracked".
 *  - Stack records: lookup is lock-free (acquire/release on bucket heads,
 *    a per-record seq that is odd while the record is rewritten); insertion
 *    takes stack_lock (raw, irqsave) and re-checks. A record's refs count
 *    its live objects plus pins: a probe pins the record it found (lookup,
 *    cached trace) before it re-checks seq, and the pin becomes the new
 *    object's reference or is dropped. When the table is full, insertion
 *    reuses a record with no references: under stack_lock, refs 0 ->
 *    MLT_REF_DEAD (cmpxchg, so no pin can succeed), unlink, rewrite with seq
 *    odd, relink. A record's counters are added to only while it is pinned.
 *    Readers (reports, OOM) stop reuse while they run (t->readers), so the
 *    records they aggregate keep their stacks.
 *  - The object pool is allocated in chunks (mlt.h). In sampled mode a
 *    probe that finds half of the allocated entries in use, or no entry
 *    left, kicks an irq_work (one kick at a time: MLT_GROW_PENDING), which
 *    queues mlt_grow_work; the work item allocates the next chunk without
 *    locks, then, under mlt_ctl_lock and if the table still wants that
 *    chunk, hands its entries to the stripes' free lists under their
 *    locks, after publishing the chunk pointer. Module exit, and a failed
 *    init once probes were registered, stop the probes, then sync the
 *    irq_work and the work.
 *  - Per-CPU state (sampling countdown, PRNG, unwind buffers, counters)
 *    is touched only by its own CPU with preemption disabled, except by a
 *    reset, which rewrites it while no table is published; frees keep
 *    counting untracked frees then, so a reset reads that counter (the
 *    new table's count starts from its sum) and never writes it. A recursion
 *    flag per context (task, softirq, hard IRQ) lets a hard IRQ that
 *    interrupts the task-level slow path be tracked, but stops a probe from
 *    re-entering itself in the same context.
 */
#define pr_fmt(fmt) "mlt: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include <linux/hash.h>
#include <linux/jhash.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/sched/clock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/preempt.h>
#include <linux/kprobes.h>
#include <linux/workqueue.h>
#include <linux/irq_work.h>
#include <linux/jiffies.h>
#include "mlt.h"

struct mlt_table __rcu *mlt_table;
/* Serialises resets, parameter changes and readers of the table. */
DEFINE_MUTEX(mlt_ctl_lock);
struct mlt_pcpu __percpu *mlt_pcpu;
DEFINE_PER_CPU(s64, mlt_until_sample);	/* bytes before the next sample */
DEFINE_PER_CPU(u64, mlt_untracked_frees);
/* The sum of mlt_untracked_frees at the last reset (mlt_ctl_lock). */
static u64 mlt_untracked_base;
const u32 mlt_no_buckets[2] __aligned(MLT_FAST_SHIFT_MASK + 1) = { MLT_NIL, MLT_NIL };
unsigned long mlt_obj_fast = MLT_FAST_NONE;
unsigned long mlt_cap_bytes;
static u64 mlt_table_gen;	/* tables built; mlt_ctl_lock */
static bool mlt_ready;
static void mlt_grow(struct work_struct *work);
static DECLARE_WORK(mlt_grow_work, mlt_grow);

/*
 * Probes may run with any lock held (a run-queue lock, a workqueue pool
 * lock): they ask for the pool to grow through an irq_work, which queues
 * the work item from a context that holds none of them.
 */
static void mlt_grow_kick_fn(struct irq_work *work)
{
	queue_work(system_unbound_wq, &mlt_grow_work);
}

/*
 * A hard irq_work: on PREEMPT_RT a plain one runs in the irq_work kthread,
 * which touches it (the rcuwait wakeup) after irq_work_sync() may have
 * returned, that is after the module may be gone.
 * 5.10 has no IRQ_WORK_INIT_HARD (and no RT flavour tested here).
 */
#ifdef IRQ_WORK_INIT_HARD
static struct irq_work mlt_grow_kick = IRQ_WORK_INIT_HARD(mlt_grow_kick_fn);
#else
static DEFINE_IRQ_WORK(mlt_grow_kick, mlt_grow_kick_fn);
#endif

/*
 * MLT_GROW_PENDING: a kick is queued or the work has not finished: probes
 * do not queue the irq_work again (no self-IPI per insertion while the
 * work waits or runs). MLT_GROW_BACKOFF: the last chunk could not be
 * allocated; no kick before mlt_grow_retry.
 */
#define MLT_GROW_PENDING	0
#define MLT_GROW_BACKOFF	1
static unsigned long mlt_grow_state;
static unsigned long mlt_grow_retry;	/* jiffies */

/* Any context: ask for another pool chunk. */
static void mlt_grow_request(void)
{
	if (test_bit(MLT_GROW_PENDING, &mlt_grow_state))
		return;
	if (test_bit(MLT_GROW_BACKOFF, &mlt_grow_state) &&
	    time_before(jiffies, READ_ONCE(mlt_grow_retry)))
		return;
	if (!test_and_set_bit(MLT_GROW_PENDING, &mlt_grow_state))
		irq_work_queue(&mlt_grow_kick);
}

/* ---- parameters ------------------------------------------------------ */

bool mlt_enable = true;
unsigned int mlt_min_size;
unsigned long mlt_gate;		/* what the fast path reads: see mlt_gate_update() */

static void mlt_gate_update(void)
{
	WRITE_ONCE(mlt_gate, mlt_enable ? mlt_min_size : ULONG_MAX);
}

static int mlt_enable_set(const char *val, const struct kernel_param *kp)
{
	int err = param_set_bool(val, kp);

	if (!err)
		mlt_gate_update();
	return err;
}

static const struct kernel_param_ops mlt_enable_ops = {
	.set = mlt_enable_set,
	.get = param_get_bool,
};
module_param_cb(enable, &mlt_enable_ops, &mlt_enable, 0644);
MODULE_PARM_DESC(enable, "Track new allocations (frees are always processed)");

/* Buckets summed per stripe lock hold by readers; 0: a stripe at once. */
unsigned int mlt_scan_chunk = MLT_SCAN_CHUNK;
module_param_named(scan_chunk, mlt_scan_chunk, uint, 0644);
MODULE_PARM_DESC(scan_chunk, "Buckets a report sums per lock hold (interrupts off); 0 = a whole stripe");

/* Debug: check every stack found against stack_trace_save() (slow). */
bool mlt_verify;
module_param_named(verify, mlt_verify, bool, 0644);
MODULE_PARM_DESC(verify, "Debug: compare every recorded stack with the kernel's own walk, count mismatches");

static int mlt_min_size_set(const char *val, const struct kernel_param *kp)
{
	int err = param_set_uint(val, kp);

	if (!err)
		mlt_gate_update();
	return err;
}

static const struct kernel_param_ops mlt_min_size_ops = {
	.set = mlt_min_size_set,
	.get = param_get_uint,
};
module_param_cb(min_size, &mlt_min_size_ops, &mlt_min_size, 0644);
MODULE_PARM_DESC(min_size, "Ignore allocations smaller than this many bytes");

static enum mlt_mode cfg_mode = MLT_MODE_SAMPLED;
static unsigned int cfg_sample_bytes = MLT_DEFAULT_SAMPLE_BYTES;
static unsigned int cfg_depth = MLT_DEFAULT_DEPTH;
static unsigned int cfg_max_objects;	/* 0: derived from the cap */
static unsigned int cfg_max_stacks;	/* 0: derived from the cap */
static unsigned int cfg_max_memory_kb;	/* 0: 1/MLT_DEFAULT_RAM_DIV of RAM */
static char cfg_slab[MLT_SLAB_NAME_LEN];
static char cfg_slab_key[MLT_SLAB_NAME_LEN];	/* mlt_slab_key() of cfg_slab */

/*
 * Rebuild the tables after a parameter change, under mlt_ctl_lock. On
 * failure the caller puts the old value back: the old tables are kept.
 */
static int mlt_apply_locked(void)
{
	lockdep_assert_held(&mlt_ctl_lock);
	return mlt_ready ? mlt_reset_locked() : 0;
}

static int mlt_mode_set(const char *val, const struct kernel_param *kp)
{
	enum mlt_mode m, old;
	int err;

	if (sysfs_streq(val, "full"))
		m = MLT_MODE_FULL;
	else if (sysfs_streq(val, "sampled"))
		m = MLT_MODE_SAMPLED;
	else
		return -EINVAL;
	mutex_lock(&mlt_ctl_lock);
	old = cfg_mode;
	cfg_mode = m;
	err = mlt_apply_locked();
	if (err)
		cfg_mode = old;
	mutex_unlock(&mlt_ctl_lock);
	return err;
}

static int mlt_mode_get(char *buf, const struct kernel_param *kp)
{
	return sprintf(buf, "%s\n", cfg_mode == MLT_MODE_FULL ? "full" : "sampled");
}

static const struct kernel_param_ops mlt_mode_ops = {
	.set = mlt_mode_set,
	.get = mlt_mode_get,
};
module_param_cb(mode, &mlt_mode_ops, NULL, 0644);
MODULE_PARM_DESC(mode, "full (every allocation) or sampled (default); change resets");

struct mlt_uint_param {
	unsigned int *var;
	unsigned int min, max;
};

static int mlt_uint_set(const char *val, const struct kernel_param *kp)
{
	const struct mlt_uint_param *p = kp->arg;
	unsigned int v, old;
	int err;

	err = kstrtouint(val, 0, &v);
	if (err)
		return err;
	if (v < p->min || v > p->max)
		return -ERANGE;
	mutex_lock(&mlt_ctl_lock);
	old = *p->var;
	*p->var = v;
	err = mlt_apply_locked();
	if (err)
		*p->var = old;
	mutex_unlock(&mlt_ctl_lock);
	return err;
}

static int mlt_uint_get(char *buf, const struct kernel_param *kp)
{
	const struct mlt_uint_param *p = kp->arg;

	return sprintf(buf, "%u\n", *p->var);
}

static const struct kernel_param_ops mlt_uint_ops = {
	.set = mlt_uint_set,
	.get = mlt_uint_get,
};

static const struct mlt_uint_param mlt_p_sample_bytes = {
	&cfg_sample_bytes, 1, MLT_SAMPLE_BYTES_MAX
};
module_param_cb(sample_bytes, &mlt_uint_ops, (void *)&mlt_p_sample_bytes, 0644);
MODULE_PARM_DESC(sample_bytes, "Mean bytes between samples in sampled mode; change resets");

static const struct mlt_uint_param mlt_p_depth = { &cfg_depth, 1, MLT_MAX_DEPTH };
module_param_cb(depth, &mlt_uint_ops, (void *)&mlt_p_depth, 0644);
MODULE_PARM_DESC(depth, "Frames kept per stack (1..32); change resets");

static const struct mlt_uint_param mlt_p_max_objects = {
	&cfg_max_objects, 0, U32_MAX / 2
};
module_param_cb(max_objects, &mlt_uint_ops, (void *)&mlt_p_max_objects, 0644);
MODULE_PARM_DESC(max_objects, "Object pool size, 0 = as many as the cap allows; change resets");

static const struct mlt_uint_param mlt_p_max_stacks = {
	&cfg_max_stacks, 0, U32_MAX / 2
};
module_param_cb(max_stacks, &mlt_uint_ops, (void *)&mlt_p_max_stacks, 0644);
MODULE_PARM_DESC(max_stacks, "Stack table size, 0 = derived from the cap; change resets");

static const struct mlt_uint_param mlt_p_max_memory_kb = {
	&cfg_max_memory_kb, 0, U32_MAX
};
module_param_cb(max_memory_kb, &mlt_uint_ops, (void *)&mlt_p_max_memory_kb, 0644);
MODULE_PARM_DESC(max_memory_kb, "Hard cap on tracking memory in KiB, 0 = 1/256 of RAM; change resets");

/*
 * The cache is found by its name in /sys/kernel/slab when the filter is
 * set: a name SLUB merged into another cache gets that cache (and so every
 * cache merged with it). No such cache: -ENOENT, except at load time (the
 * cache may come later, /sys may not be mounted yet): then mlt_init()
 * looks again and else filters on the name itself.
 */
static int mlt_slab_set(const char *val, const struct kernel_param *kp)
{
	size_t len = strcspn(val, "\n");
	char old[MLT_SLAB_NAME_LEN], old_key[MLT_SLAB_NAME_LEN];
	char name[MLT_SLAB_NAME_LEN], key[MLT_SLAB_NAME_LEN] = "";
	int err;

	if (len >= sizeof(cfg_slab))
		return -ENAMETOOLONG;
	if (len && !mlt_slab_filter_supported())
		return -EOPNOTSUPP;
	memcpy(name, val, len);
	name[len] = '\0';
	if (len) {
		err = mlt_slab_key(name, key, sizeof(key));
		if (err == -ENOENT && !READ_ONCE(mlt_ready))
			err = 0;
		if (err)
			return err;
	}
	mutex_lock(&mlt_ctl_lock);
	memcpy(old, cfg_slab, sizeof(old));
	memcpy(old_key, cfg_slab_key, sizeof(old_key));
	memcpy(cfg_slab, name, sizeof(cfg_slab));
	memcpy(cfg_slab_key, key, sizeof(cfg_slab_key));
	err = mlt_apply_locked();
	if (err) {
		memcpy(cfg_slab, old, sizeof(old));
		memcpy(cfg_slab_key, old_key, sizeof(old_key));
	}
	mutex_unlock(&mlt_ctl_lock);
	return err;
}

static int mlt_slab_get(char *buf, const struct kernel_param *kp)
{
	return sprintf(buf, "%s\n", cfg_slab);
}

static const struct kernel_param_ops mlt_slab_ops = {
	.set = mlt_slab_set,
	.get = mlt_slab_get,
};
module_param_cb(slab, &mlt_slab_ops, NULL, 0644);
MODULE_PARM_DESC(slab, "Track only kmem_cache_alloc from the cache of this name (empty: all); change resets");

static int mlt_reset_set(const char *val, const struct kernel_param *kp)
{
	int err;

	mutex_lock(&mlt_ctl_lock);
	err = mlt_apply_locked();
	mutex_unlock(&mlt_ctl_lock);
	return err;
}

static int mlt_reset_get(char *buf, const struct kernel_param *kp)
{
	return sprintf(buf, "0\n");
}

static const struct kernel_param_ops mlt_reset_ops = {
	.set = mlt_reset_set,
	.get = mlt_reset_get,
};
module_param_cb(reset, &mlt_reset_ops, NULL, 0200);
MODULE_PARM_DESC(reset, "Write anything to clear the tables and counters");

/* ---- fixed-point helpers (no floating point in the kernel) ----------- */

/* log2(x) in Q16 for x >= 1. */
static u32 mlt_log2_q16(u64 x)
{
	u32 ip = ilog2(x), frac = 0;
	u64 y = ip >= 31 ? x >> (ip - 31) : x << (31 - ip);
	int i;

	for (i = 15; i >= 0; i--) {
		y = (y * y) >> 31;
		if (y >= (2ULL << 31)) {
			y >>= 1;
			frac |= 1U << i;
		}
	}
	return (ip << 16) | frac;
}

#define MLT_LN2_Q16 45426	/* ln(2) * 2^16 */

/* Bytes until the next sample: exponential with mean @mean. */
s64 mlt_next_interval(struct rnd_state *rnd, u32 mean)
{
	u64 r = (u64)prandom_u32_state(rnd) + 1;	/* U = r / 2^32 in (0, 1] */
	u64 nlog2 = (32ULL << 16) - mlt_log2_q16(r);	/* -log2(U), Q16 */
	u64 nln = (nlog2 * MLT_LN2_Q16) >> 16;		/* -ln(U), Q16 */
	u64 v = ((u64)mean * nln) >> 16;

	return v ? v : 1;
}

/* p = 1 - exp(-x) in Q32, x = size / mean. */
static u64 mlt_sample_prob_q32(u32 size, u32 mean)
{
	u64 x = div_u64((u64)size << 32, mean);	/* Q32 */
	u64 t = x, t2, t3, t4, e, p;
	unsigned int k = 0;

	if (x >= (40ULL << 32))
		return 1ULL << 32;
	while (t >= (1ULL << 28)) {	/* halve until t < 1/16 */
		t >>= 1;
		k++;
	}
	t2 = (t * t) >> 32;
	t3 = (t2 * t) >> 32;
	t4 = (t3 * t) >> 32;
	if (!k) {
		p = t - t2 / 2 + t3 / 6 - t4 / 24;
	} else {
		e = (1ULL << 32) - t + t2 / 2 - t3 / 6 + t4 / 24;
		while (k--)
			e = (e * e) >> 32;
		p = (1ULL << 32) - e;
	}
	return p ? p : 1;
}

/* Weight of one tracked object of @size: how many it stands for, Q10. */
u64 mlt_weight(const struct mlt_table *t, u32 size)
{
	if (t->mode == MLT_MODE_FULL)
		return MLT_W_ONE;
	return div64_u64(MLT_W_ONE << 32,
			 mlt_sample_prob_q32(size ? size : 1, t->sample_bytes));
}

/* ---- counters --------------------------------------------------------- */

/* The free fast path's untracked frees since load. */
static u64 mlt_untracked_fast_sum(void)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(per_cpu(mlt_untracked_frees, cpu));
	return sum;
}

u64 mlt_counter_sum(enum mlt_counter c)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(per_cpu_ptr(mlt_pcpu, cpu)->cnt[c]);
	if (c == MLT_C_UNTRACKED_FREES)
		sum += mlt_untracked_fast_sum() - READ_ONCE(mlt_untracked_base);
	return sum;
}

/* ---- stack table ------------------------------------------------------ */

/* Pin a record against reuse; false while it is being reused. */
bool mlt_stack_pin(struct mlt_table *t, u32 sidx)
{
	return atomic_inc_unless_negative(&mlt_stk(t, sidx)->refs);
}

/* Drop a pin or an object's reference, after its counter updates. */
void mlt_stack_put(struct mlt_table *t, u32 sidx)
{
	smp_mb__before_atomic();	/* counters before a reuse can zero them */
	atomic_dec(&mlt_stk(t, sidx)->refs);
}

/* While a reader runs, no record is reused: its stacks stay put. */
void mlt_readers_enter(struct mlt_table *t)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&t->stack_lock, flags);
	t->readers++;
	raw_spin_unlock_irqrestore(&t->stack_lock, flags);
}

void mlt_readers_exit(struct mlt_table *t)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&t->stack_lock, flags);
	t->readers--;
	raw_spin_unlock_irqrestore(&t->stack_lock, flags);
}

/*
 * The record of this stack, pinned, or MLT_NIL. Without stack_lock a
 * record may be rewritten meanwhile: a match counts only if the record's
 * seq was even and is unchanged once pinned. A chain walk that a reuse
 * sends elsewhere ends at MLT_NIL or at the bound; the caller then looks
 * again under the lock.
 */
static u32 mlt_stack_find(struct mlt_table *t, u32 b, u32 h,
			  const unsigned long *f, u32 nr, u32 kind)
{
	u32 i, seq, n = 0;

	/* Pairs with the releases in mlt_stack_get(): the record is complete. */
	for (i = smp_load_acquire(&t->stack_buckets[b]);
	     i != MLT_NIL && n++ < t->max_stacks;
	     i = READ_ONCE(mlt_stk(t, i)->next)) {
		const struct mlt_stack *st = mlt_stk(t, i);

		/* Pairs with the release of the even seq in mlt_stack_get(). */
		seq = smp_load_acquire(&st->seq);
		if ((seq & 1) || READ_ONCE(st->hash) != h || READ_ONCE(st->nr) != nr ||
		    READ_ONCE(st->kind) != kind ||
		    memcmp(mlt_stack_frames(t, i), f, nr * sizeof(*f)))
			continue;
		if (!mlt_stack_pin(t, i))
			continue;
		/* The pin is a full barrier: seq is read after it. */
		if (READ_ONCE(st->seq) == seq)
			return i;
		mlt_stack_put(t, i);
	}
	return MLT_NIL;
}

/*
 * A record with no references, unlinked and marked MLT_REF_DEAD, or
 * MLT_NIL. Looks at MLT_REUSE_SCAN records from where the last look
 * stopped. Called with stack_lock held.
 */
static u32 mlt_stack_reuse(struct mlt_table *t)
{
	u32 n, i, *link;
	struct mlt_stack *st;

	if (t->readers)
		return MLT_NIL;
	for (n = 0; n < min_t(u32, MLT_REUSE_SCAN, t->nr_stacks); n++) {
		i = t->reuse_hand < t->nr_stacks ? t->reuse_hand : 0;
		t->reuse_hand = i + 1;
		st = mlt_stk(t, i);
		if (atomic_read(&st->refs) ||
		    atomic_cmpxchg(&st->refs, 0, MLT_REF_DEAD) != 0)
			continue;
		link = &t->stack_buckets[hash_32(st->hash, t->stack_bits)];
		while (*link != i && *link != MLT_NIL)
			link = &mlt_stk(t, *link)->next;
		if (*link == i)
			WRITE_ONCE(*link, st->next);
		mlt_count(MLT_C_STACKS_REUSED, 1);
		return i;
	}
	return MLT_NIL;
}

/*
 * Record sidx's frames are in a module going away: from now on it reports
 * the text at text_off (already written) and no lookup or cached trace
 * finds it, so a module loaded at the same addresses gets records of its
 * own. Its live objects keep it; once they are freed it may be reused.
 * Returns false when it has no objects left (nothing to keep).
 */
bool mlt_stack_freeze(struct mlt_table *t, u32 sidx, u32 text_off)
{
	struct mlt_stack *st = mlt_stk(t, sidx);
	unsigned long flags;
	u32 *link;
	bool kept;

	raw_spin_lock_irqsave(&t->stack_lock, flags);
	kept = atomic_read(&st->refs) > 0 && !st->frozen;
	if (kept) {
		link = &t->stack_buckets[hash_32(st->hash, t->stack_bits)];
		while (*link != sidx && *link != MLT_NIL)
			link = &mlt_stk(t, *link)->next;
		if (*link == sidx)
			WRITE_ONCE(*link, st->next);
		/* A new seq: traces and lookups in flight no longer match. */
		WRITE_ONCE(st->seq, st->seq + 1);
		smp_wmb();	/* odd seq before frozen */
		WRITE_ONCE(st->frozen, text_off + 1);
		smp_store_release(&st->seq, st->seq + 1);	/* frozen before even seq */
	}
	raw_spin_unlock_irqrestore(&t->stack_lock, flags);
	return kept;
}

/*
 * The record of stack f[0..nr), pinned (mlt_stack_put() when not kept), or
 * MLT_NIL when the table is full and no record is free of references.
 */
u32 mlt_stack_get(struct mlt_table *t, const unsigned long *f, u32 nr,
		  u32 kind)
{
	u32 h = jhash(f, nr * sizeof(*f), kind);
	u32 b = hash_32(h, t->stack_bits);
	struct mlt_stack *st;
	unsigned long flags;
	bool fresh = false;
	u32 i;

	i = mlt_stack_find(t, b, h, f, nr, kind);
	if (i != MLT_NIL)
		return i;

	raw_spin_lock_irqsave(&t->stack_lock, flags);
	i = mlt_stack_find(t, b, h, f, nr, kind);
	if (i != MLT_NIL)
		goto out;
	if (t->nr_stacks < t->stacks_alloc) {
		i = t->nr_stacks;
		fresh = true;
		/* Sampled mode: ask for the next chunk at the mark. */
		if (i + 1 >= t->stack_grow_at)
			mlt_grow_request();
	} else {
		if (t->stacks_alloc < t->max_stacks)
			mlt_grow_request();
		i = mlt_stack_reuse(t);
		if (i == MLT_NIL)
			goto out;
	}
	st = mlt_stk(t, i);
	WRITE_ONCE(st->seq, st->seq + 1);
	smp_wmb();	/* odd seq before the fields change */
	WRITE_ONCE(st->hash, h);
	WRITE_ONCE(st->nr, nr);
	WRITE_ONCE(st->kind, kind);
	memcpy(mlt_stack_frames(t, i), f, nr * sizeof(*f));
	atomic64_set(&st->allocs_w, 0);
	atomic64_set(&st->frees_w, 0);
	WRITE_ONCE(st->frozen, 0);
	WRITE_ONCE(st->next, t->stack_buckets[b]);
	/* Fields before the even seq and the pin (lookups, traces). */
	smp_store_release(&st->seq, st->seq + 1);
	atomic_set_release(&st->refs, 1);	/* the caller's pin */
	if (fresh)	/* publish the record before its index (readers) */
		smp_store_release(&t->nr_stacks, i + 1);
	/* Pairs with the acquire in mlt_stack_find(). */
	smp_store_release(&t->stack_buckets[b], i);
out:
	raw_spin_unlock_irqrestore(&t->stack_lock, flags);
	return i;
}

NOKPROBE_SYMBOL(mlt_stack_get);

/* ---- object table ----------------------------------------------------- */

/*
 * Stripe s, locked, has no free entry: move some from another stripe's
 * free list, so that drops start only when the whole pool is nearly full.
 */
static void mlt_stripe_steal(struct mlt_table *t, struct mlt_stripe *s)
{
	u32 first = s - t->stripes + 1, k, n, i;
	struct mlt_stripe *o;

	for (k = 0; k < MLT_STRIPES - 1; k++) {
		o = &t->stripes[(first + k) & (MLT_STRIPES - 1)];
		if (READ_ONCE(o->free) == MLT_NIL || !raw_spin_trylock(&o->lock))
			continue;
		for (n = 0; n < MLT_STEAL_BATCH && o->free != MLT_NIL; n++) {
			i = o->free;
			WRITE_ONCE(o->free, mlt_obj(t, i)->next);
			mlt_obj(t, i)->next = s->free;
			WRITE_ONCE(s->free, i);
		}
		raw_spin_unlock(&o->lock);
		if (n)
			return;
	}
}

/* Is there a free pool entry for stripe s, in it or in another? */
static bool mlt_pool_has_room(struct mlt_table *t, struct mlt_stripe *s)
{
	u32 k;

	if (READ_ONCE(s->free) != MLT_NIL)
		return true;
	for (k = 0; k < MLT_STRIPES; k++)
		if (READ_ONCE(t->stripes[k].free) != MLT_NIL)
			return true;
	return false;
}

/* Enter an object of pinned stack sidx; the pin becomes its reference. */
static void mlt_obj_insert(struct mlt_table *t, unsigned long ptr, u32 size,
			   u32 asize, u32 sidx)
{
	u32 b = mlt_obj_bucket(t, ptr);
	struct mlt_stripe *s = &t->stripes[b & (MLT_STRIPES - 1)];
	u64 w = mlt_weight(t, size);
	u32 i, old_stack = MLT_NIL, old_size = 0;
	struct mlt_obj *o = NULL;
	unsigned long flags;

	raw_spin_lock_irqsave(&s->lock, flags);
	for (i = t->buckets[b]; i != MLT_NIL; i = o->next) {
		o = mlt_obj(t, i);
		if (o->ptr == ptr)
			break;
	}
	if (i != MLT_NIL) {
		/* Still in the table: its free was never seen. */
		old_stack = o->stack;
		old_size = o->size;
	} else {
		if (s->free == MLT_NIL)
			mlt_stripe_steal(t, s);
		i = s->free;
		if (i == MLT_NIL) {
			raw_spin_unlock_irqrestore(&s->lock, flags);
			mlt_stack_put(t, sidx);
			mlt_count(MLT_C_DROP_POOL, 1);
			if (READ_ONCE(t->flags) & MLT_F_LAZY)
				mlt_grow_request();
			return;
		}
		o = mlt_obj(t, i);
		WRITE_ONCE(s->free, o->next);
		s->used++;
		o->ptr = ptr;
		o->next = t->buckets[b];
		WRITE_ONCE(t->buckets[b], i);
	}
	/* Counted before a free on another CPU can drop the reference. */
	atomic64_add(w, &mlt_stk(t, sidx)->allocs_w);
	o->stack = sidx;
	o->size = size;
	o->asize = asize;
	raw_spin_unlock_irqrestore(&s->lock, flags);

	if (old_stack != MLT_NIL) {
		mlt_count(MLT_C_MISSED_FREES, 1);
		atomic64_add(mlt_weight(t, old_size), &mlt_stk(t, old_stack)->frees_w);
		mlt_stack_put(t, old_stack);
	} else if ((READ_ONCE(t->flags) & MLT_F_LAZY) &&
		   atomic_inc_return(&t->obj_used) >= READ_ONCE(t->grow_at)) {
		mlt_grow_request();
	}
	mlt_count(MLT_C_TRACKED, 1);
}

/* false: ptr is not in the table (the caller counts it, or not: pages). */
noinline bool mlt_untrack(unsigned long ptr, u32 b)
{
	/*
	 * Same RCU-sched section as the bucket peek: the table cannot have
	 * been replaced, only unpublished (NULL) by a reset in progress.
	 */
	struct mlt_table *t = rcu_dereference_sched(mlt_table);
	struct mlt_stripe *s;
	u32 *link;
	u32 i, sidx = MLT_NIL, size = 0;
	unsigned long flags;

	if (unlikely(!t || in_nmi()))
		return true;
	s = &t->stripes[b & (MLT_STRIPES - 1)];
	link = &t->buckets[b];
	raw_spin_lock_irqsave(&s->lock, flags);
	for (i = *link; i != MLT_NIL; link = &mlt_obj(t, i)->next, i = *link) {
		struct mlt_obj *o = mlt_obj(t, i);

		if (o->ptr != ptr)
			continue;
		WRITE_ONCE(*link, o->next);
		sidx = o->stack;
		size = o->size;
		o->ptr = 0;
		o->next = s->free;
		WRITE_ONCE(s->free, i);
		s->used--;
		break;
	}
	raw_spin_unlock_irqrestore(&s->lock, flags);

	if (sidx == MLT_NIL)
		return false;
	if (READ_ONCE(t->flags) & MLT_F_LAZY)
		atomic_dec(&t->obj_used);
	atomic64_add(mlt_weight(t, size), &mlt_stk(t, sidx)->frees_w);
	mlt_stack_put(t, sidx);
	return true;
}

NOKPROBE_SYMBOL(mlt_untrack);

/* A free whose bucket is not empty (mlt_on_free()). */
noinline void mlt_free_slow(unsigned long ptr, u32 b)
{
	/*
	 * kfree(NULL) and kfree(ZERO_SIZE_PTR) hash to two fixed buckets: once
	 * an object sits in one, every such free would take its stripe lock
	 * with interrupts off, to free nothing.
	 */
	if (ZERO_OR_NULL_PTR(ptr))
		return;
	if (!mlt_untrack(ptr, b))
		mlt_count(MLT_C_UNTRACKED_FREES, 1);
}

NOKPROBE_SYMBOL(mlt_free_slow);

/* ---- hot path --------------------------------------------------------- */

static __always_inline enum mlt_ctx mlt_ctx_of(void)
{
	if (hardirq_count())
		return MLT_CTX_HARDIRQ;
	if (in_serving_softirq())
		return MLT_CTX_SOFTIRQ;
	return MLT_CTX_TASK;
}

/*
 * The stack record of an allocation at call_site, pinned, or MLT_NIL when
 * it is not tracked (NMI, recursion, pool or stack table full, made for
 * this module). hint: the pointer, or any value, to choose the stripe whose
 * room is checked first.
 */
static u32 mlt_track_stack(struct mlt_table *t, unsigned long hint,
			   unsigned long call_site, u32 kind)
{
	struct mlt_pcpu *pc = this_cpu_ptr(mlt_pcpu);
	enum mlt_ctx ctx = mlt_ctx_of();
	u64 t0 = local_clock();
	u32 sidx;

	if (unlikely(in_nmi()))
		return MLT_NIL;
	if (pc->busy[ctx]) {
		mlt_count(MLT_C_RECURSION, 1);
		return MLT_NIL;
	}

	/*
	 * Pool full: make no stack record for an object that is dropped. If
	 * more chunks may be added, ask again (a kick at a time, none during
	 * the backoff after a failure): with only leaks, no insertion would.
	 */
	if (!mlt_pool_has_room(t, &t->stripes[mlt_obj_bucket(t, hint) &
					      (MLT_STRIPES - 1)])) {
		mlt_count(MLT_C_DROP_POOL, 1);
		if (READ_ONCE(t->flags) & MLT_F_LAZY)
			mlt_grow_request();
		return MLT_NIL;
	}
	pc->busy[ctx] = 1;
	barrier();

	/* Pages: no call site, found in the stack (mlt_pages.c). */
	if (kind == MLT_KIND_PAGES)
		sidx = mlt_pages_stack(t, pc->buf[ctx]);
	else
		sidx = mlt_stack_of(t, pc->buf[ctx], call_site, kind);
	/* Allocations made for this module (report buffers) are not leaks. */
	if (sidx == MLT_NIL)
		mlt_count(MLT_C_DROP_STACKS, 1);
	else if (sidx == MLT_SKIP)
		sidx = MLT_NIL;
	else if (unlikely(READ_ONCE(mlt_verify)))
		mlt_verify_stack(t, pc->buf[ctx], call_site, sidx);
	barrier();
	pc->busy[ctx] = 0;
	mlt_count(MLT_C_SLOW_NS, local_clock() - t0);
	mlt_count(MLT_C_SLOW_CALLS, 1);
	return sidx;
}

static void mlt_track(struct mlt_table *t, unsigned long ptr, size_t size,
		      size_t asize, unsigned long call_site)
{
	u32 sidx = mlt_track_stack(t, ptr, call_site, MLT_KIND_SLAB);

	if (sidx == MLT_NIL)
		return;
	/* A probe that cannot tell the object size: ask the allocator. */
	if (!asize)
		asize = ksize((void *)ptr);
	mlt_obj_insert(t, ptr, min_t(size_t, size, U32_MAX),
		       min_t(size_t, max(asize, size), U32_MAX), sidx);
}

/*
 * An allocation whose per-CPU countdown reached zero: draw the next sample
 * distance (sampled mode) and apply the size gate. The table to track it
 * in, or NULL.
 */
static struct mlt_table *mlt_admit(size_t size)
{
	struct mlt_table *t = rcu_dereference_sched(mlt_table);

	if (unlikely(!t))
		return NULL;	/* reset in progress: it rewrites the countdown */
	if (t->flags & MLT_F_SAMPLED) {
		if (unlikely(in_nmi()))
			return NULL;
		this_cpu_write(mlt_until_sample,
			       mlt_next_interval(this_cpu_ptr(&mlt_pcpu->rnd),
						 t->sample_bytes));
	}
	if (size < READ_ONCE(mlt_gate))
		return NULL;
	return t;
}

/* An allocation whose per-CPU countdown reached zero: filters, tracking. */
noinline void mlt_alloc_slow(const void *ptr, size_t size, size_t asize,
			     unsigned long call_site, const char *cache_name)
{
	struct mlt_table *t = mlt_admit(size);

	if (!t || unlikely(ZERO_OR_NULL_PTR(ptr)))
		return;
	if (unlikely(t->flags & MLT_F_SLAB) &&
	    (!cache_name || strcmp(cache_name, t->slab_key)))
		return;
	mlt_track(t, (unsigned long)ptr, size, asize, call_site);
}

NOKPROBE_SYMBOL(mlt_alloc_slow);

/*
 * Allocators probed at their entry (vmalloc, mlt_vmalloc.c), which may
 * sleep before they return: the entry half. Counts size down like
 * mlt_on_alloc() and, for an allocation to track, finds its stack record
 * (pinned, in *sidx) and returns the table, for mlt_alloc_leave() to enter
 * the object into once the allocator returned. NULL: not tracked. The
 * slab filter tracks only its cache: nothing else then.
 */
struct mlt_table *mlt_alloc_enter(size_t size, unsigned long call_site,
				  u32 kind, u32 *sidx)
{
	struct mlt_table *t;

	if (likely(mlt_countdown(size)))
		return NULL;
	t = mlt_admit(size);
	if (!t || (t->flags & MLT_F_SLAB))
		return NULL;
	*sidx = mlt_track_stack(t, call_site, call_site, kind);
	return *sidx == MLT_NIL ? NULL : t;
}

NOKPROBE_SYMBOL(mlt_alloc_enter);

/*
 * The return half: enter ptr (0: the allocation failed) with the record
 * pinned by mlt_alloc_enter() in t. The table may have been replaced
 * while the allocator slept: then t may be gone and is not touched (its
 * pin went with it); gen tells a new table at the same address.
 */
void mlt_alloc_leave(struct mlt_table *t, u64 gen, u32 sidx,
		     unsigned long ptr, size_t size, size_t asize)
{
	if (rcu_dereference_sched(mlt_table) != t || READ_ONCE(t->gen) != gen)
		return;
	if (!ptr) {
		mlt_stack_put(t, sidx);
		return;
	}
	mlt_obj_insert(t, ptr, min_t(size_t, size, U32_MAX),
		       min_t(size_t, max(asize, size), U32_MAX), sidx);
}

NOKPROBE_SYMBOL(mlt_alloc_leave);

/* ---- read side -------------------------------------------------------- */

/*
 * Sum outstanding weights per stack into t->agg. Caller holds mlt_ctl_lock
 * (so t stays alive and agg has one user) in process context. A stripe's
 * buckets are summed mlt_scan_chunk at a time, the stripe lock (interrupts
 * off) dropped between chunks, so the longest interrupts-off section does
 * not grow with the pool. Each bucket is consistent in itself; the probes
 * keep running meanwhile. Records the longest section (t->scan_*).
 */
void mlt_aggregate(struct mlt_table *t, u64 *objects, u64 *bytes, u64 *abytes)
{
	u32 nb = 1U << t->obj_bits, b, i, s, n, chunk, holds = 0;
	u64 t0, dt, longest = 0;
	unsigned long flags;

	chunk = READ_ONCE(mlt_scan_chunk) ? : nb;
	*objects = 0;
	*bytes = 0;
	*abytes = 0;
	for (i = 0; i < t->nr_schunks; i++)
		memset(mlt_stack_agg(t, i << MLT_SCHUNK_SHIFT), 0,
		       sizeof(struct mlt_agg) * t->schunk_len);
	for (s = 0; s < MLT_STRIPES; s++) {
		for (b = s; b < nb;) {
			local_irq_save(flags);
			t0 = local_clock();
			raw_spin_lock(&t->stripes[s].lock);
			for (n = 0; n < chunk && b < nb; n++, b += MLT_STRIPES) {
				for (i = t->buckets[b]; i != MLT_NIL; i = mlt_obj(t, i)->next) {
					const struct mlt_obj *o = mlt_obj(t, i);
					u64 w = mlt_weight(t, o->size);

					struct mlt_agg *a = mlt_stack_agg(t, o->stack);

					a->objects_w += w;
					a->bytes_w += w * o->size;
					a->abytes_w += w * o->asize;
					*objects += 1;
					*bytes += o->size;
					*abytes += o->asize;
				}
			}
			raw_spin_unlock(&t->stripes[s].lock);
			dt = local_clock() - t0;
			local_irq_restore(flags);
			longest = max(longest, dt);
			holds++;
			cond_resched();
		}
	}
	t->scan_last_ns = longest;
	t->scan_last_holds = holds;
	t->scan_max_ns = max(t->scan_max_ns, longest);
}

/* ---- table life cycle ------------------------------------------------- */

static void mlt_table_free(struct mlt_table *t)
{
	u32 c;

	if (!t)
		return;
	for (c = 0; t->chunks && c < t->max_chunks; c++)
		vfree(t->chunks[c]);
	vfree(t->chunks);
	vfree(t->buckets);
	for (c = 0; t->schunks && c < t->max_schunks; c++)
		vfree(t->schunks[c]);
	vfree(t->schunks);
	vfree(t->stack_buckets);
	vfree(t->traces);
	vfree(t->frozen_text);
	vfree(t);
}

/* Learnt traces (mlt_unwind.c): one per two stack records, two sets or more. */
static u32 mlt_nr_traces(u32 stacks)
{
	return max_t(u32, roundup_pow_of_two(stacks) / 2, 2 * MLT_TRACE_WAYS);
}

/*
 * Stack chunk c of a table of stacks records: the records of a whole
 * chunk's layout (mlt.h) and the frames of those it has. Each is its own
 * vmalloc area, so whole pages, as the cap counts them.
 */
static size_t mlt_schunk_mem(u32 stacks, u32 depth, u32 c)
{
	u32 len = min_t(u32, stacks, MLT_SCHUNK);
	u32 n = min_t(u32, stacks - (c << MLT_SCHUNK_SHIFT), MLT_SCHUNK);

	return PAGE_ALIGN((size_t)len * (sizeof(struct mlt_stack) + sizeof(struct mlt_agg)) +
			  (size_t)n * depth * sizeof(unsigned long));
}

/* Memory of the stack table's arrays as the cap counts it. */
static size_t mlt_stack_mem(u32 stacks, u32 depth)
{
	u32 chunks = DIV_ROUND_UP(stacks, MLT_SCHUNK);

	return (size_t)(chunks - 1) * mlt_schunk_mem(stacks, depth, 0) +
	       mlt_schunk_mem(stacks, depth, chunks - 1) +
	       PAGE_ALIGN((size_t)chunks * sizeof(void *)) +
	       PAGE_ALIGN((size_t)roundup_pow_of_two(stacks) * sizeof(u32)) +
	       PAGE_ALIGN(mlt_trace_mem(mlt_nr_traces(stacks)));
}

/* Entries in chunk c of a pool of objects entries. */
static u32 mlt_chunk_len(u32 objects, u32 c)
{
	return min_t(u32, objects - (c << MLT_CHUNK_SHIFT), MLT_CHUNK);
}

static size_t mlt_chunk_mem(u32 objects, u32 c)
{
	return PAGE_ALIGN((size_t)mlt_chunk_len(objects, c) * sizeof(struct mlt_obj));
}

static size_t mlt_obj_mem(u32 objects)
{
	u32 chunks = DIV_ROUND_UP(objects, MLT_CHUNK);

	return (size_t)(chunks - 1) * mlt_chunk_mem(objects, 0) +
	       mlt_chunk_mem(objects, chunks - 1) +
	       PAGE_ALIGN((size_t)chunks * sizeof(struct mlt_obj *)) +
	       PAGE_ALIGN((size_t)roundup_pow_of_two(objects) * sizeof(u32));
}

/* MLT_F_LAZY: grow once half of the allocated entries are in use. */
static u32 mlt_grow_mark(const struct mlt_table *t)
{
	if (t->nr_chunks >= t->max_chunks)
		return U32_MAX;
	return (t->nr_chunks << MLT_CHUNK_SHIFT) / 2;
}

/*
 * Publish chunk c (t->nr_chunks) and hand its entries to the stripes'
 * free lists, round robin. Process context; mlt_ctl_lock held, or the
 * table not yet published.
 */
static void mlt_pool_add(struct mlt_table *t, u32 c, struct mlt_obj *mem)
{
	u32 first = c << MLT_CHUNK_SHIFT, n = mlt_chunk_len(t->max_objects, c);
	u32 head[MLT_STRIPES], tail[MLT_STRIPES], i, s;
	unsigned long flags;

	for (s = 0; s < MLT_STRIPES; s++)
		head[s] = MLT_NIL;
	for (i = n; i-- > 0;) {
		s = i % MLT_STRIPES;
		mem[i].ptr = 0;
		mem[i].next = head[s];
		if (head[s] == MLT_NIL)
			tail[s] = first + i;
		head[s] = first + i;
	}
	WRITE_ONCE(t->chunks[c], mem);
	for (s = 0; s < MLT_STRIPES; s++) {
		if (head[s] == MLT_NIL)
			continue;
		/* The lock orders the chunk before its entries for everyone. */
		raw_spin_lock_irqsave(&t->stripes[s].lock, flags);
		mlt_obj(t, tail[s])->next = t->stripes[s].free;
		WRITE_ONCE(t->stripes[s].free, head[s]);
		raw_spin_unlock_irqrestore(&t->stripes[s].lock, flags);
	}
	t->nr_chunks = c + 1;
	t->bytes_alloc += mlt_chunk_mem(t->max_objects, c);
	WRITE_ONCE(t->grow_at, mlt_grow_mark(t));
	/* Complete: the probes stop counting entries in use (obj_used). */
	if (t->nr_chunks == t->max_chunks)
		WRITE_ONCE(t->flags, t->flags & ~MLT_F_LAZY);
}

/*
 * Publish stack chunk c (t->nr_schunks, zeroed): records below
 * stacks_alloc may be made from now on. Process context; mlt_ctl_lock
 * held, or the table not yet published.
 */
static void mlt_schunk_add(struct mlt_table *t, u32 c, void *mem)
{
	unsigned long flags;

	WRITE_ONCE(t->schunks[c], mem);
	t->nr_schunks = c + 1;
	t->bytes_alloc += mlt_schunk_mem(t->max_stacks, t->depth, c);
	/* The lock orders the chunk before the records made in it. */
	raw_spin_lock_irqsave(&t->stack_lock, flags);
	t->stacks_alloc = min_t(u32, t->max_stacks, (c + 1) << MLT_SCHUNK_SHIFT);
	/* Sampled mode: the next chunk once half of the records are made. */
	t->stack_grow_at = t->nr_schunks < t->max_schunks ? t->stacks_alloc / 2 : U32_MAX;
	raw_spin_unlock_irqrestore(&t->stack_lock, flags);
}

/*
 * A rebuild that fails for want of memory is refused and the old tables
 * kept (mlt_reset_locked()): no allocation-failure splat for it.
 */
static void *mlt_vmalloc(size_t size)
{
	return __vmalloc(size, GFP_KERNEL | __GFP_NOWARN);
}

static void *mlt_vzalloc(size_t size)
{
	return __vmalloc(size, GFP_KERNEL | __GFP_NOWARN | __GFP_ZERO);
}

/* After a chunk could not be allocated, growth waits this long. */
#define MLT_GROW_BACKOFF_JIFFIES	(5 * HZ)

enum mlt_grow_what { MLT_GROW_NONE, MLT_GROW_POOL, MLT_GROW_STACKS };

/*
 * Does t want another chunk, of its pool or its stack table, and of what
 * size? mlt_ctl_lock held.
 */
static enum mlt_grow_what mlt_grow_needed(const struct mlt_table *t, u32 *c,
					  size_t *size)
{
	if (!t)
		return MLT_GROW_NONE;
	if ((t->flags & MLT_F_LAZY) && t->nr_chunks < t->max_chunks &&
	    atomic_read(&t->obj_used) >= t->grow_at) {
		*c = t->nr_chunks;
		*size = mlt_chunk_mem(t->max_objects, *c);
		return MLT_GROW_POOL;
	}
	if (t->nr_schunks < t->max_schunks &&
	    READ_ONCE(t->nr_stacks) >= READ_ONCE(t->stack_grow_at)) {
		*c = t->nr_schunks;
		*size = mlt_schunk_mem(t->max_stacks, t->depth, *c);
		return MLT_GROW_STACKS;
	}
	return MLT_GROW_NONE;
}

/*
 * Sampled mode: add pool chunks while half of the allocated entries are in
 * use (MLT_F_LAZY), stack chunks while half of the allocated records are
 * made. Queued by mlt_grow_request() (any context): from an insertion or
 * a new record above the mark, an allocation dropped for want of an entry,
 * or a record reused or dropped while chunks are missing. The chunk is allocated without
 * mlt_ctl_lock (reports, parameter writes and the OOM report do not wait
 * for reclaim) and without retrying reclaim or invoking the OOM killer
 * (the pool grows while something may be leaking memory); after a failure
 * the next attempt waits MLT_GROW_BACKOFF.
 */
static void mlt_grow(struct work_struct *work)
{
	enum mlt_grow_what what, now;
	struct mlt_table *t;
	size_t size, size2;
	u32 c, c2;
	void *mem;

	for (;;) {
		mutex_lock(&mlt_ctl_lock);
		t = rcu_dereference_protected(mlt_table,
					      lockdep_is_held(&mlt_ctl_lock));
		what = mlt_grow_needed(t, &c, &size);
		mutex_unlock(&mlt_ctl_lock);
		if (what == MLT_GROW_NONE)
			break;

		mem = __vmalloc(size, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN |
				(what == MLT_GROW_STACKS ? __GFP_ZERO : 0));
		if (!mem) {
			WRITE_ONCE(mlt_grow_retry,
				   jiffies + MLT_GROW_BACKOFF_JIFFIES);
			set_bit(MLT_GROW_BACKOFF, &mlt_grow_state);
			break;
		}
		clear_bit(MLT_GROW_BACKOFF, &mlt_grow_state);

		/*
		 * The table may have been rebuilt meanwhile, even at the same
		 * address: a chunk of the same kind, index and size fits it
		 * anyway.
		 */
		mutex_lock(&mlt_ctl_lock);
		t = rcu_dereference_protected(mlt_table,
					      lockdep_is_held(&mlt_ctl_lock));
		now = mlt_grow_needed(t, &c2, &size2);
		if (now == what && c2 == c && size2 == size) {
			if (what == MLT_GROW_POOL)
				mlt_pool_add(t, c, mem);
			else
				mlt_schunk_add(t, c, mem);
			mem = NULL;
		}
		mutex_unlock(&mlt_ctl_lock);
		if (mem) {
			vfree(mem);
			break;
		}
	}
	/* A probe that saw the bit still set finds the mark reached again. */
	clear_bit_unlock(MLT_GROW_PENDING, &mlt_grow_state);
}

/*
 * Sampled mode: the pool entries a sample of all memory needs. An object
 * of s bytes is sampled with p = 1 - exp(-s / sample_bytes) <= s /
 * sample_bytes, so the objects held number RAM / sample_bytes at most on
 * average, however memory is split; MLT_SAMPLED_MARGIN times that (and at
 * least a chunk) is beyond anything a sum of that many independent draws
 * reaches. Entries whose free went unseen (no kfree_rcu probe) are not
 * in this count; the cap still bounds them, and drops are counted.
 */
static u32 mlt_sampled_objects(u32 sample_bytes)
{
	u64 need = div_u64((u64)totalram_pages() << PAGE_SHIFT, sample_bytes);

	return clamp_t(u64, need * MLT_SAMPLED_MARGIN, MLT_CHUNK, U32_MAX / 2);
}

/* Size a table for the current parameters within the cap (*cap). */
static struct mlt_table *mlt_table_alloc(unsigned long *cap)
{
	/* The table itself, the per-CPU state, the module's static tables. */
	size_t fixed = PAGE_ALIGN(sizeof(struct mlt_table)) + MLT_FROZEN_TEXT +
		       num_possible_cpus() * sizeof(struct mlt_pcpu) +
		       mlt_unwind_static_mem();
	size_t avail, smem, per_obj = sizeof(struct mlt_obj) + 2 * sizeof(u32);
	size_t trace_bytes;
	struct mlt_table *t;
	struct mlt_obj *mem;
	u32 stacks, objects, nr_chunks, nr_schunks, c, s;
	void *smem_c;

	if (cfg_max_memory_kb)
		*cap = (unsigned long)cfg_max_memory_kb * 1024;
	else
		*cap = max_t(unsigned long,
			     (totalram_pages() << PAGE_SHIFT) / MLT_DEFAULT_RAM_DIV,
			     MLT_MIN_CAP_KB * 1024UL);
	if (*cap <= fixed)
		return ERR_PTR(-ENOSPC);
	avail = *cap - fixed;

	stacks = cfg_max_stacks;
	if (!stacks) {
		stacks = MLT_DEFAULT_MAX_STACKS;
		while (stacks > 1 &&
		       mlt_stack_mem(stacks, cfg_depth) > avail / MLT_STACK_SHARE_DIV)
			stacks /= 2;
	}
	smem = mlt_stack_mem(stacks, cfg_depth);
	if (smem + mlt_obj_mem(MLT_STRIPES) > avail)
		return ERR_PTR(-ENOSPC);

	objects = cfg_max_objects ? cfg_max_objects :
		  min_t(size_t, (avail - smem) / per_obj, U32_MAX / 2);
	if (!cfg_max_objects && cfg_mode == MLT_MODE_SAMPLED)
		objects = min(objects, mlt_sampled_objects(cfg_sample_bytes));
	while (objects > MLT_STRIPES && smem + mlt_obj_mem(objects) > avail)
		objects -= objects / 16 + 1;
	objects = max_t(u32, rounddown(objects, MLT_STRIPES), MLT_STRIPES);

	t = mlt_vzalloc(sizeof(*t));
	if (!t)
		return ERR_PTR(-ENOMEM);
	t->mode = cfg_mode;
	t->flags = (cfg_mode == MLT_MODE_SAMPLED ? MLT_F_SAMPLED : 0) |
		   (cfg_slab[0] ? MLT_F_SLAB : 0);
	t->sample_bytes = cfg_sample_bytes;
	t->depth = cfg_depth;
	strscpy(t->slab, cfg_slab, sizeof(t->slab));
	strscpy(t->slab_key, cfg_slab_key, sizeof(t->slab_key));
	t->max_objects = objects;
	t->max_chunks = DIV_ROUND_UP(objects, MLT_CHUNK);
	nr_chunks = t->max_chunks;
	if (cfg_mode == MLT_MODE_SAMPLED && nr_chunks > MLT_LAZY_CHUNKS) {
		nr_chunks = MLT_LAZY_CHUNKS;
		t->flags |= MLT_F_LAZY;
	}
	t->obj_bits = ilog2(roundup_pow_of_two(objects));
	t->max_stacks = stacks;
	t->schunk_len = min_t(u32, stacks, MLT_SCHUNK);
	t->max_schunks = DIV_ROUND_UP(stacks, MLT_SCHUNK);
	nr_schunks = cfg_mode == MLT_MODE_SAMPLED ?
		     min(t->max_schunks, MLT_LAZY_SCHUNKS) : t->max_schunks;
	t->stack_bits = ilog2(roundup_pow_of_two(stacks));
	t->trace_bits = ilog2(mlt_nr_traces(stacks) / MLT_TRACE_WAYS);
	trace_bytes = mlt_trace_mem(MLT_TRACE_WAYS << t->trace_bits);

	t->chunks = mlt_vzalloc(array_size(t->max_chunks, sizeof(*t->chunks)));
	t->buckets = mlt_vmalloc(array_size(1U << t->obj_bits, sizeof(u32)));
	t->schunks = mlt_vzalloc(array_size(t->max_schunks, sizeof(*t->schunks)));
	t->stack_buckets = mlt_vmalloc(array_size(1U << t->stack_bits, sizeof(u32)));
	t->traces = trace_bytes ? mlt_vzalloc(trace_bytes) : NULL;
	t->frozen_text = mlt_vmalloc(MLT_FROZEN_TEXT);
	if (!t->chunks || !t->buckets || !t->schunks || !t->stack_buckets ||
	    (trace_bytes && !t->traces) || !t->frozen_text) {
		mlt_table_free(t);
		return ERR_PTR(-ENOMEM);
	}
	raw_spin_lock_init(&t->trace_lock);
	memset(t->buckets, 0xff, sizeof(u32) << t->obj_bits);
	memset(t->stack_buckets, 0xff, sizeof(u32) << t->stack_bits);
	raw_spin_lock_init(&t->stack_lock);

	for (s = 0; s < MLT_STRIPES; s++) {
		raw_spin_lock_init(&t->stripes[s].lock);
		t->stripes[s].free = MLT_NIL;
	}
	t->bytes = fixed + smem + mlt_obj_mem(objects);
	t->bytes_alloc = t->bytes;
	for (c = 0; c < t->max_chunks; c++)
		t->bytes_alloc -= mlt_chunk_mem(objects, c);
	for (c = 0; c < t->max_schunks; c++)
		t->bytes_alloc -= mlt_schunk_mem(stacks, t->depth, c);
	for (c = 0; c < nr_schunks; c++) {
		smem_c = mlt_vzalloc(mlt_schunk_mem(stacks, t->depth, c));
		if (!smem_c) {
			mlt_table_free(t);
			return ERR_PTR(-ENOMEM);
		}
		mlt_schunk_add(t, c, smem_c);
	}
	for (c = 0; c < nr_chunks; c++) {
		mem = mlt_vmalloc(mlt_chunk_mem(objects, c));
		if (!mem) {
			mlt_table_free(t);
			return ERR_PTR(-ENOMEM);
		}
		mlt_pool_add(t, c, mem);
	}
	return t;
}

/*
 * Drop all tracking state and start again with the current parameters.
 * The new table is built first: if it cannot be (it does not fit the cap,
 * or memory is short), the old one stays in use and the error is returned.
 * Old and new coexist for the moment of the switch (process context).
 */
int mlt_reset_locked(void)
{
	struct mlt_table *old, *t;
	unsigned long cap;
	int cpu;

	lockdep_assert_held(&mlt_ctl_lock);
	old = rcu_dereference_protected(mlt_table, lockdep_is_held(&mlt_ctl_lock));
	t = mlt_table_alloc(&cap);
	if (IS_ERR(t)) {
		if (old)
			pr_warn("rebuild rejected (%ld): no new tables within a %lu byte cap; the old ones stay in use\n",
				PTR_ERR(t), cap);
		else
			pr_err("cannot build tables within the %lu byte cap: %ld\n",
			       cap, PTR_ERR(t));
		return PTR_ERR(t);
	}
	RCU_INIT_POINTER(mlt_table, NULL);
	WRITE_ONCE(mlt_obj_fast, MLT_FAST_NONE);
	synchronize_rcu();	/* no probe uses old or the per-CPU state now */
	mlt_table_free(old);

	/*
	 * Frees still count untracked frees on their CPUs (MLT_FAST_NONE's
	 * buckets are empty), so that counter is not rewritten from here but
	 * read: the new table's count starts at the sum now.
	 */
	WRITE_ONCE(mlt_untracked_base, mlt_untracked_fast_sum());
	for_each_possible_cpu(cpu) {
		struct mlt_pcpu *pc = per_cpu_ptr(mlt_pcpu, cpu);

		memset(pc->cnt, 0, sizeof(pc->cnt));
		memset(pc->busy, 0, sizeof(pc->busy));
		/* Full mode: the countdown stays <= 0, every allocation is slow. */
		per_cpu(mlt_until_sample, cpu) = cfg_mode == MLT_MODE_FULL ? 0 :
			mlt_next_interval(&pc->rnd, cfg_sample_bytes);
	}

	mlt_cap_bytes = cap;
	t->reset_ns = ktime_get_boottime_ns();
	t->gen = ++mlt_table_gen;
	/* The buckets, page aligned, and their hash shift in one word. */
	BUILD_BUG_ON(BITS_PER_LONG != 64);
	/* Pairs with the dependent load in mlt_on_free(): buckets initialised. */
	smp_store_release(&mlt_obj_fast, (unsigned long)t->buckets | (64 - t->obj_bits));
	rcu_assign_pointer(mlt_table, t);
	return 0;
}

/* ---- module life cycle ------------------------------------------------ */

static int __init mlt_init(void)
{
	int cpu, err;

	mlt_pcpu = alloc_percpu(struct mlt_pcpu);
	if (!mlt_pcpu)
		return -ENOMEM;
	for_each_possible_cpu(cpu)
		prandom_seed_state(&per_cpu_ptr(mlt_pcpu, cpu)->rnd, get_random_u64());

	mlt_gate_update();
	mutex_lock(&mlt_ctl_lock);
	if (cfg_slab[0]) {
		err = mlt_slab_key(cfg_slab, cfg_slab_key, sizeof(cfg_slab_key));
		if (err)
			pr_warn("slab=%s: no such cache in /sys/kernel/slab (%d): filtering on the cache name '%s'\n",
				cfg_slab, err, cfg_slab_key);
	}
	err = mlt_reset_locked();
	mutex_unlock(&mlt_ctl_lock);
	if (err)
		goto out_pcpu;

	err = mlt_unwind_init();
	if (err)
		goto out_table;
	err = mlt_probes_register();
	if (err)
		goto out_unwind;
	mlt_vmalloc_register();		/* without it: no vmalloc records */
	mlt_pages_register();		/* without it: no pages records */
	err = mlt_report_init();
	if (err)
		goto out_probes;

	mutex_lock(&mlt_ctl_lock);
	mlt_ready = true;
	mutex_unlock(&mlt_ctl_lock);
	pr_info("tracking %s, cap %lu bytes\n",
		cfg_mode == MLT_MODE_FULL ? "every allocation" : "sampled allocations",
		mlt_cap_bytes);
	return 0;

out_probes:
	mlt_pages_unregister();
	mlt_vmalloc_unregister();
	mlt_probes_unregister();
out_unwind:
	/*
	 * A failed mlt_probes_register() has unregistered what it registered,
	 * but an allocation probe may have kicked growth before that.
	 */
	irq_work_sync(&mlt_grow_kick);
	cancel_work_sync(&mlt_grow_work);
	mlt_unwind_exit();
out_table:
	mlt_table_free(rcu_dereference_protected(mlt_table, true));
	RCU_INIT_POINTER(mlt_table, NULL);
	WRITE_ONCE(mlt_obj_fast, MLT_FAST_NONE);
out_pcpu:
	free_percpu(mlt_pcpu);
	return err;
}

static void __exit mlt_exit(void)
{
	mlt_report_exit();
	mlt_pages_unregister();
	mlt_vmalloc_unregister();
	mlt_probes_unregister();	/* waits for every probe in flight */
	irq_work_sync(&mlt_grow_kick);	/* nothing queues either now */
	cancel_work_sync(&mlt_grow_work);
	mlt_unwind_exit();
	mutex_lock(&mlt_ctl_lock);
	mlt_ready = false;
	mlt_table_free(rcu_dereference_protected(mlt_table, true));
	RCU_INIT_POINTER(mlt_table, NULL);
	WRITE_ONCE(mlt_obj_fast, MLT_FAST_NONE);
	mutex_unlock(&mlt_ctl_lock);
	free_percpu(mlt_pcpu);
}

module_init(mlt_init);
module_exit(mlt_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("MLT: outstanding kmalloc/kmem_cache allocations per stack");
