#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# In-guest scenario for mlt.ko, run by run-qemu.sh as the init hook.
# Usage: guest-tests.sh full|smoke
# It only drives the modules and emits reports; tests/check.py asserts on
# the host. Each step's reports are emitted under a section name that
# check.py knows.
. /lib/mlt-guest.sh

LEVEL=${1:-full}
D=/sys/kernel/debug/mlt
P=/sys/module/mlt/parameters
RUN=/sys/module/leaky/parameters/run

lk() { echo "$*" > $RUN || note "leaky_failed" "$*"; }

try insmod_leaky insmod /modules/leaky.ko
# verify=1: every stack found is also compared with the kernel's own walk.
try insmod_mlt insmod /modules/mlt.ko mode=full verify=1
[ -d $D ] || exit 1
emit stats_start $D/stats

# Exact per-stack counts in full mode.
lk leak 10 400
lk cache 7
lk churn 1000
emit full $D/stacks
emit slabinfo /proc/slabinfo
emit full_again $D/stacks
emit legacy $D/mem_leaks

# One call site reached through two paths, interleaved: exact per path.
emit paths_before_stats $D/stats
lk paths 40 25
emit paths $D/stacks
emit paths_stats $D/stats
note arch "$(uname -m)"

# vmalloc areas (kind vmalloc): 5 vmallocs, 2 kvmallocs too big for
# kmalloc (they fall back to vmalloc), vmalloc+vfree churn that must not
# show; then all freed.
lk vmalloc 5 12388
lk kvmalloc 2
lk vchurn 50
note kvmalloc_size "$(cat /sys/module/leaky/parameters/kvmalloc_size)"
note vmalloc_probe "$(sed -n 's/^vmalloc_probe //p' $D/stats)"
note kernel_release "$(uname -r)"
note memtotal_kb "$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)"
emit vmalloc $D/stacks
emit vmalloc_stats $D/stats
lk freeall
emit vmalloc_freed $D/stacks

# Page allocations (kind pages): 100 order-0 and 25 order-2 allocations
# kept, page alloc+free churn that must not show; 300 objects of an
# unmerged cache of 2000-byte objects (new order-3 slabs) and 20 large
# kmallocs, whose pages are slab's and must not show as pages.
lk pages 100 0
lk pages 25 2
lk pchurn 200
lk big 300
lk leak 20 65536
# x86_64: 10 pages through each of two indirect calls whose last bytes
# read as a direct call into pagecache_get_page: mid-function (not an
# entry: tracked) and 5 bytes before it (a call-depth thunk's place:
# page cache where the kernel has call thunks).
[ "$(uname -m)" != x86_64 ] || lk decoy 10
note call_thunks "$(cat /sys/module/leaky/parameters/call_thunks)"
note page_probe "$(sed -n 's/^page_probe //p' $D/stats)"
emit pages $D/stacks
emit pages_stats $D/stats
lk freeall
emit pages_freed $D/stacks

# Exact stacks: one helper reached from a plain caller first, then from a
# caller that realigns its stack frame, in this system call and in a work
# item. verify=1 counts stacks that differ from the kernel's own walk.
lk align 50
emit align $D/stacks
emit align_stats $D/stats
lk freeall

# kfree_rcu: must be gone once the grace period has passed. kfree_rcu()
# frees in bulk once it has a page for its pointer array; without one (the
# first batch after boot on 5.10) it frees one by one with kfree(). Up to
# three rounds, until the bulk path has been seen.
round=0
while [ $round -lt 3 ]; do
	lk rcu 50
	i=0
	while [ $i -lt 30 ]; do
		sleep 0.5
		grep -q leaky_rcu_alloc $D/stacks || break
		i=$((i + 1))
	done
	grep -q '^bulk_freed_objects 0$' $D/stats || break
	round=$((round + 1))
done
emit rcu $D/stacks
emit rcu_stats $D/stats

# Another probe on kmem:kmalloc (a trace event) mid-run puts the kernel's
# tracepoint iterator between the tracepoint and mlt: same ids and counts.
# One call site reaching kmalloc and kmem_cache_alloc through tail-calling
# wrappers, alternating.
lk leak 10 400
emit tp_before $D/stacks
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T
try tp_enable sh -c "echo 1 > $T/events/kmem/kmalloc/enable"
lk leak 10 400
lk fnptr 25
echo 0 > $T/events/kmem/kmalloc/enable
emit tp_during $D/stacks
emit tp_stats $D/stats
lk freeall

# Hard IRQ and softirq allocations, freed later in process context.
lk irq 8
emit irq $D/stacks
lk irqfree
emit irq_freed $D/stacks

# Alloc/free storm on all CPUs while reports are read repeatedly.
if [ "$LEVEL" = full ]; then STORM_MS=3000; else STORM_MS=1000; fi
reads=$(storm_reading $STORM_MS) || note leaky_failed storm
note storm_reads $reads
emit storm $D/stacks
emit storm_stats $D/stats

lk freeall
emit freed $D/stacks

if [ "$LEVEL" = full ]; then
	# Unload with live entries, reload: the stack id must not change.
	lk leak 5 1000
	try rmmod_live rmmod mlt
	try insmod_again insmod /modules/mlt.ko mode=full verify=1
	lk leak 10 400
	emit reload $D/stacks
	lk freeall

	# Filters: minimum size.
	echo 1000 > $P/min_size
	lk leak 10 400
	lk leak 5 2000
	emit min_size $D/stacks
	echo 0 > $P/min_size
	lk freeall

	# Filters: slab cache name (kernels with a public struct kmem_cache).
	emit slab_stats $D/stats
	try slab_set sh -c "echo leaky_cache > $P/slab"
	lk leak 10 400
	lk cache 3
	emit slab $D/stacks
	echo > $P/slab
	lk freeall

	# A cache that SLUB merged into another (leaky_merge_b, mergeable like
	# leaky_merge_a): the filter finds the merged cache. An unknown name is
	# refused and leaves the filter as it was.
	note merge_link_a "$(readlink /sys/kernel/slab/leaky_merge_a)"
	note merge_link_b "$(readlink /sys/kernel/slab/leaky_merge_b)"
	try slab_merged_set sh -c "echo leaky_merge_b > $P/slab"
	lk merged 9
	lk cache 2
	lk leak 3 200
	emit slab_merged $D/stacks
	emit slab_merged_stats $D/stats
	try slab_unknown sh -c "echo leaky_no_such_cache > $P/slab"
	note slab_after_unknown "$(cat $P/slab)"
	echo > $P/slab
	lk freeall

	# The cap: a pool of 256 objects must hold, and say it dropped.
	echo 256 > $P/max_objects
	# Below the pool size nothing is dropped, however the pointers hash.
	lk leak 150 64
	emit cap_below $D/stacks
	lk leak 850 64
	emit cap_objects $D/stacks
	emit cap_objects_stats $D/stats
	lk freeall
	echo 0 > $P/max_objects
	echo 256 > $P/max_memory_kb
	lk leak 20000 32
	emit cap_memory $D/stacks
	emit_sized cap_memory
	lk freeall
	echo 0 > $P/max_memory_kb

	# The stack table never fills for good: more transient stacks (and
	# IRQ ones) than a 64-record table holds, all freed, then a new leak.
	echo 64 > $P/max_stacks
	lk branches 300
	lk irq 8
	lk irqfree
	lk leak 10 400
	emit reuse $D/stacks
	emit reuse_stats $D/stats
	lk freeall
	echo 0 > $P/max_stacks

	# A rejected parameter write leaves tracking running with the old
	# values: a table too large for the cap, a cap too small for any.
	lk leak 10 400
	try reject_max_stacks sh -c "echo 100000000 > $P/max_stacks"
	try reject_max_memory sh -c "echo 1 > $P/max_memory_kb"
	# ... and a cap of 4 GB in a 512 MB guest: out of memory.
	try reject_nomem sh -c "echo 4000000 > $P/max_memory_kb"
	note after_reject "$(cat $P/max_stacks) $(cat $P/max_memory_kb) $(cat $P/mode)"
	lk leak 5 400
	emit rejected $D/stacks
	lk freeall

	# Reading the report with a large pool: the stripes are summed in
	# chunks, interrupts on between them. Timing is reported, not checked.
	echo 65536 > $P/max_memory_kb
	lk leak 20000 32
	echo 0 > $P/scan_chunk
	cat $D/stacks > /dev/null
	emit scan_whole_stats $D/stats
	echo 256 > $P/scan_chunk
	# A report held open: what it holds while open (the text, exactly as
	# long as the report, and one page for seq_read()).
	exec 3< $D/stacks
	emit report_open_stats $D/stats
	cat <&3 > /tmp/report.txt
	exec 3<&-
	note report_len "$(wc -c < /tmp/report.txt)"
	emit scan_chunked_stats $D/stats
	lk freeall
	echo 0 > $P/max_memory_kb

	# A module that goes away with live objects: they keep their names
	# and id while another module (lodger) has the addresses its code
	# had, and once it is loaded again.
	lk freeall
	lk leak 10 400
	emit unload_before $D/stacks
	echo 1 > /sys/module/leaky/parameters/leak_on_unload
	note leaky_text_before "$(cat /sys/module/leaky/sections/.text)"
	grep '\[leaky\]$' /proc/kallsyms > /tmp/ks_leaky.txt
	emit kallsyms_leaky /tmp/ks_leaky.txt
	try rmmod_leaking rmmod leaky
	emit unload_gone $D/stacks
	emit unload_stats $D/stats
	try insmod_lodger insmod /modules/lodger.ko
	note lodger_text "$(cat /sys/module/lodger/sections/.text)"
	grep '\[lodger\]$' /proc/kallsyms > /tmp/ks_lodger.txt
	emit kallsyms_lodger /tmp/ks_lodger.txt
	try lodger_keep sh -c "echo 6 > /sys/module/lodger/parameters/keep"
	emit unload_lodger $D/stacks
	try rmmod_lodger rmmod lodger
	try insmod_leaky_again insmod /modules/leaky.ko
	note leaky_text_after "$(cat /sys/module/leaky/sections/.text)"
	lk leak 5 400
	emit unload_again $D/stacks
	lk freeall

	# Reset via debugfs.
	lk leak 3 500
	echo 1 > $D/reset
	emit after_reset $D/stacks
	lk freeall
fi

# Sampled mode: estimates of the truth.
echo sampled > $P/mode
echo 4096 > $P/sample_bytes
# untracked_frees counts frees of objects not in the table (20000 64-byte
# objects, about 1.6 % of them sampled), not kfree(NULL) or
# kfree(ZERO_SIZE_PTR) (100000 each).
emit untracked_start_stats $D/stats
lk nullfree 100000
emit untracked_null_stats $D/stats
lk churn 20000
emit untracked_churn_stats $D/stats
lk leak 4000 256
lk cache 4000
lk vmalloc 200 3000
lk pages 400 0
lk pages 100 2
emit sampled $D/stacks
emit sampled_stats $D/stats
lk freeall
emit sampled_freed $D/stacks
lk leak 20 65536
emit sampled_big $D/stacks
lk freeall

# Sampled mode allocates the object pool a chunk (16384 entries) at a
# time: one at first, another from a work item once half are in use.
# sample_bytes 1 samples every allocation (weight 1): 20000 leaks, in two
# batches that fit what is allocated, the second after the pool grew.
echo 1 > $P/sample_bytes
echo 4096 > $P/max_memory_kb
emit_sized grow_start
lk leak 10000 64
i=0
while [ $i -lt 60 ] && grep -q '^obj_chunks 1$' $D/stats; do
	sleep 0.5
	i=$((i + 1))
done
lk leak 10000 64
emit grow $D/stacks
emit grow_stats $D/stats
lk freeall
# The same with weights: 2048-byte objects at sample_bytes 1024 are sampled
# with p = 1 - exp(-2) = 0.86 (weight 1.16); 12500 leaks put ~10800 in the
# pool (the change of sample_bytes rebuilt it: one chunk), ~8650 of them
# before it grows past its first chunk's mark (8192), the rest into the
# new chunk.
echo 1024 > $P/sample_bytes
i=0
while [ $i -lt 8 ]; do
	lk leak 1250 2048
	i=$((i + 1))
done
i=0
while [ $i -lt 60 ] && grep -q '^obj_chunks 1$' $D/stats; do
	sleep 0.5
	i=$((i + 1))
done
lk leak 1250 2048
lk leak 1250 2048
emit grow_weighted $D/stacks
emit grow_weighted_stats $D/stats
lk freeall

# Sampled mode sizes its tables for what sampling needs: at the default
# sample_bytes (and a 4 MiB cap) one pool chunk, hash buckets for
# MLT_SAMPLED_MARGIN x RAM / sample_bytes entries and one stack chunk at
# first.
echo 65536 > $P/sample_bytes
emit_sized sampled_load
# The stack table grows a chunk (256 records) at a time from a work item.
# sample_bytes 1 samples every allocation (weight 1): 1000 stacks leaked
# in batches of 100, each once 150 records are left (the other
# allocations of the guest make stacks too).
st() { sed -n "s/^$1 //p" $D/stats; }
echo 1 > $P/sample_bytes
emit stack_grow_start_stats $D/stats
i=0
while [ $i -lt 10 ]; do
	j=0
	while [ $j -lt 60 ] && [ $(( $(st stacks_used) + 150 )) -gt "$(st stacks_allocated)" ] &&
	      [ "$(st stack_chunks)" -lt "$(st max_stack_chunks)" ]; do
		sleep 0.5
		j=$((j + 1))
	done
	lk branchleak $((i * 100)) 100
	i=$((i + 1))
done
emit stack_grow $D/stacks
emit_sized stack_grow
lk freeall
echo 0 > $P/max_memory_kb
echo 4096 > $P/sample_bytes

# Steady leak and churn from leaky's kthread (the end-to-end test knobs).
echo full > $P/mode
L=/sys/module/leaky/parameters
echo 512 > $L/steady_size
echo 20 > $L/steady_ms
echo 5 > $L/churn_ms
sleep 2
echo 0 > $L/steady_ms
echo 0 > $L/churn_ms
sleep 0.2
note steady_leaked "$(cat $L/steady_leaked)"
emit steady $D/stacks

# The kernel log must be clean up to here (the OOM below prints traces).
dmesg > /tmp/dmesg.txt
emit dmesg /tmp/dmesg.txt

# Real OOMs: the first prints the top stacks to the kernel log, the next
# ones within oom_interval_s only count (an hour here: the rounds take
# more than the default minute on a slow emulated arm64).
echo 3600 > $P/oom_interval_s
lk leak 50 1000
for round in 1 2 3; do
	# Two 300 MB buffers in a 512 MB guest: the OOM killer takes one.
	dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null &
	dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null
	wait
done
# The report is printed by a work item, after the OOM.
i=0
while [ $i -lt 20 ] && ! dmesg | grep -q 'mlt: OOM: #1'; do
	sleep 0.5
	i=$((i + 1))
done
sleep 1
dmesg | grep 'mlt: OOM' > /tmp/oom.txt
emit oom /tmp/oom.txt
emit oom_stats $D/stats

# Unload with live entries.
lk leak 100 128
try rmmod_end rmmod mlt

# Without the kmem_cache_free_bulk kprobe (refused on purpose, as with
# CONFIG_KPROBES=n or lockdown): the report header says so, and objects
# freed in bulk stay listed. leaky's kfree_bulk() takes the bulk path every
# time; kfree_rcu() takes it only when it has a pointer-array page cached,
# else frees one by one with kfree() (seen on 5.10 and 6.1 in CI).
try insmod_no_bulk insmod /modules/mlt.ko mode=full debug_bulk_probe_refused=1
lk freeall
lk bulk 50
emit no_bulk $D/stacks
emit no_bulk_stats $D/stats
dmesg | grep 'mlt: no kprobe' > /tmp/no_bulk.txt
emit no_bulk_log /tmp/no_bulk.txt
try rmmod_no_bulk rmmod mlt
try rmmod_leaky rmmod leaky

# slab= at load naming a cache that does not exist yet (leaky is not
# loaded): accepted, and the cache is tracked by its name once it comes.
try insmod_slab_early insmod /modules/mlt.ko mode=full slab=leaky_cache
if [ -d /sys/module/mlt ]; then
	try insmod_leaky_late insmod /modules/leaky.ko
	lk cache 3
	lk leak 2 400
	emit slab_early $D/stacks
	emit slab_early_stats $D/stats
	try rmmod_leaky_late rmmod leaky
	try rmmod_slab_early rmmod mlt
fi
dmesg | grep 'mlt: slab=' > /tmp/slab_early.txt
emit slab_early_log /tmp/slab_early.txt

# Page cache is not kernel memory, movable or not: a block device's own
# mapping is GFP_USER, and file systems read their metadata through it
# with sb_bread_unmovable(). With mlt tracking in full mode: the virtio
# disk's driver is loaded (partition scan), ext4 mounts the ext2 file
# system on it (superblock, group descriptors), dd reads the whole device
# (readahead), and leaky takes pages from the page cache's allocator.
# None of it may show as pages. Last: the disk's modules stay loaded.
if [ -d /modules/disk ]; then
	try insmod_pagecache insmod /modules/mlt.ko mode=full verify=1
	try insmod_leaky_pagecache insmod /modules/leaky.ko
	for m in /modules/disk/*.ko; do
		insmod "$m" || note disk_insmod_failed "$m"
	done
	i=0
	while [ $i -lt 20 ] && [ ! -b /dev/vda ]; do
		sleep 0.5
		i=$((i + 1))
	done
	mkdir -p /mnt
	try disk_mount mount -t ext2 -o ro /dev/vda /mnt
	ls -l /mnt > /dev/null
	try disk_read sh -c "dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null"
	# The page cache's allocator called from a module, as a file system's
	# own readahead does: it tail-calls the page allocator.
	lk pcache 20
	emit pagecache $D/stacks
	emit pagecache_stats $D/stats
	try disk_umount umount /mnt
	lk freeall
	try rmmod_leaky_pagecache rmmod leaky
	try rmmod_pagecache rmmod mlt
else
	note disk absent
fi
exit 0
