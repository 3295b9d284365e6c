#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-guest part of run-ab.sh. Usage: ab-guest.sh REPS OPS K
# /modules/mlt.ko is the new build, /modules/base/mlt.ko the base one.
# Prints "@@LOAD which cap pages areas" and (mlt-measure.sh) "@@BENCH
# config rep ps" K times per configuration.
. /lib/mlt-guest.sh
REPS=${1:-7}
OPS=${2:-200000}
K=${3:-5}
B=/sys/module/mlt_bench/parameters
. /lib/mlt-measure.sh

# What a sampled-mode load holds: the pages of mlt's vmalloc areas.
load() {
	insmod "$2" mode=sampled $3 || exit 1
	echo "@@LOAD $1 ${3:-default} $(grep '\[mlt\]' /proc/vmallocinfo |
		sed -n 's/.*pages=\([0-9]*\).*/\1/p' | awk '{s += $1; n++} END {print s, n}')"
	rmmod mlt
}

for which in base new; do
	ko=/modules/mlt.ko
	[ $which = base ] && ko=/modules/base/mlt.ko
	load $which $ko
	load $which $ko max_memory_kb=4096
done

insmod /modules/mlt_bench.ko || exit 1
echo "$OPS" > $B/run	# warm the caches
r=0
while [ $r -lt "$REPS" ]; do
	r=$((r + 1))
	measure none
	echo 1 > $B/count_probe
	measure count
	echo 0 > $B/count_probe
	# Alternate which build goes first.
	if [ $((r % 2)) = 1 ]; then order="base new"; else order="new base"; fi
	for which in $order; do
		ko=/modules/mlt.ko
		[ $which = base ] && ko=/modules/base/mlt.ko
		insmod $ko mode=sampled || exit 1
		measure $which
		rmmod mlt
	done
done
exit 0
