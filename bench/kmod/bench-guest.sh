#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-guest part of run-bench.sh. Usage: bench-guest.sh REPS OPS K
# Interleaves the configurations in every repetition so that drift in the
# (noisy, emulated) machine hits them alike; measure() (mlt-measure.sh)
# prints "@@BENCH config rep ps" K times per configuration.
. /lib/mlt-guest.sh
REPS=${1:-7}
OPS=${2:-200000}
K=${3:-5}
B=/sys/module/mlt_bench/parameters
P=/sys/module/mlt/parameters
. /lib/mlt-measure.sh

# Page alloc+free pairs of order 0 and 2: config_p0, config_p2. A pair
# costs 10-70 us under TCG (Debian kernels zero every page they hand out,
# init_on_alloc): OPS / 10 of them.
measure_pages() {
	for o in 0 2; do
		echo $o > $B/page_order
		measure "$1_p$o" $((OPS / 10)) || return 1
	done
	echo -1 > $B/page_order
}

insmod /modules/mlt_bench.ko || exit 1
echo "$OPS" > $B/run	# warm the caches
r=0
while [ $r -lt "$REPS" ]; do
	r=$((r + 1))
	measure none
	measure_pages none
	echo 1 > $B/count_probe
	measure_pages count
	# The target's pair, counting floor and sampled kmalloc, back to back
	# (only the set-up and the untimed run between them), in alternating
	# order.
	if [ $((r % 2)) = 1 ]; then
		measure count
		echo 0 > $B/count_probe
		insmod /modules/mlt.ko mode=sampled || exit 1
		measure sampled
	else
		echo 0 > $B/count_probe
		insmod /modules/mlt.ko mode=sampled || exit 1
		measure sampled
		rmmod mlt
		echo 1 > $B/count_probe
		measure count
		echo 0 > $B/count_probe
		insmod /modules/mlt.ko mode=sampled || exit 1
	fi
	measure_pages sampled
	echo full > $P/mode
	measure full
	measure_pages full
	[ $r = 1 ] && emit stats_full /sys/kernel/debug/mlt/stats
	echo 0 > $P/stack_cache
	measure full_walk
	echo 1 > $P/stack_cache
	echo 4 > $P/depth
	measure full_depth4
	# Eight stacks from one call site: more than a stack-cache set holds.
	echo 16 > $P/depth
	echo 8 > $B/stacks
	measure full_s8
	echo 0 > $P/stack_cache
	measure full_walk_s8
	rmmod mlt
	measure none_s8
	echo 1 > $B/stacks
done
exit 0
