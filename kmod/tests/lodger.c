// SPDX-License-Identifier: GPL-2.0
/*
 * lodger: test module for mlt.ko, loaded after leaky.ko went away with live
 * objects, to take the addresses leaky's code had. Those objects must keep
 * leaky's frame names and stack ids in mlt's reports (their frames were
 * frozen as text when leaky went away), while lodger's own allocations get
 * stacks of their own.
 *
 *   echo N > keep   allocate N objects of LODGER_OBJ bytes in
 *                   lodger_keep_one (called from lodger_keep); kept until
 *                   unload
 *
 * Its text covers leaky's: lodger_keep runs LODGER_PAD bytes of no-ops
 * first, so the module's code spans the first page and most of the second,
 * as leaky's (8.5 - 9.5 KiB on x86_64) does, past leaky_leak_kmalloc (at
 * 4.5 - 5.5 KiB on x86_64 6.1/6.12). Its whole footprint stays below leaky's,
 * so it fits the hole leaky left.
 *
 * Locking: the kept objects are on a list under lodger_lock; only process
 * context touches them.
 */
#define pr_fmt(fmt) "lodger: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/list.h>
#include <linux/mutex.h>

#define LODGER_OBJ	120	/* bytes per kept object, as reported */
#define LODGER_MAX	1000	/* objects one write may ask for */
#define LODGER_PAD	6144	/* bytes of no-ops in lodger_keep */
#ifdef CONFIG_X86
#define LODGER_NOP_BYTES	1
#else
#define LODGER_NOP_BYTES	4	/* arm64 */
#endif

struct lodger_obj {
	struct list_head node;
};

static LIST_HEAD(lodger_kept);
static DEFINE_MUTEX(lodger_lock);

/* Not a tail call: the stack shows lodger_keep_one, then lodger_keep. */
static noinline struct lodger_obj *lodger_keep_one(void)
{
	struct lodger_obj *o = kmalloc(LODGER_OBJ, GFP_KERNEL);

	if (o)
		INIT_LIST_HEAD(&o->node);
	return o;
}

static noinline int lodger_keep(unsigned int n)
{
	struct lodger_obj *o;
	unsigned int i;

	/* Text, not data: code that runs, so objtool and ORC see a function. */
	asm volatile(".rept %c0\n\tnop\n\t.endr" : : "i" (LODGER_PAD / LODGER_NOP_BYTES));
	for (i = 0; i < n; i++) {
		o = lodger_keep_one();
		if (!o)
			return -ENOMEM;
		mutex_lock(&lodger_lock);
		list_add(&o->node, &lodger_kept);
		mutex_unlock(&lodger_lock);
	}
	return 0;
}

static int lodger_keep_set(const char *val, const struct kernel_param *kp)
{
	unsigned int n;
	int err;

	err = kstrtouint(val, 0, &n);
	if (err)
		return err;
	if (n > LODGER_MAX)
		return -ERANGE;
	return lodger_keep(n);
}

static const struct kernel_param_ops lodger_keep_ops = {
	.set = lodger_keep_set,
};
module_param_cb(keep, &lodger_keep_ops, NULL, 0200);
MODULE_PARM_DESC(keep, "Allocate this many objects, kept until unload");

static void __exit lodger_exit(void)
{
	struct lodger_obj *o, *tmp;

	list_for_each_entry_safe(o, tmp, &lodger_kept, node)
		kfree(o);
}

module_exit(lodger_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Takes the addresses of an unloaded module, for testing mlt.ko");
