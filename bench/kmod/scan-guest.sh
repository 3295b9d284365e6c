#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# In-guest part of run-scan.sh. Usage: scan-guest.sh CAP_KB OBJECTS READS
# Prints "@@SCAN chunk read irqoff_ns lock_holds objects" per read of stacks.
. /lib/mlt-guest.sh
CAP=${1:-65536}
OBJS=${2:-20000}
READS=${3:-7}
P=/sys/module/mlt/parameters
D=/sys/kernel/debug/mlt

insmod /modules/leaky.ko || exit 1
insmod /modules/mlt.ko mode=full max_memory_kb="$CAP" || exit 1
echo "leak $OBJS 32" > /sys/module/leaky/parameters/run || exit 1
for chunk in 0 256 64; do
	echo $chunk > $P/scan_chunk
	r=0
	while [ $r -lt "$READS" ]; do
		r=$((r + 1))
		cat $D/stacks > /dev/null
		echo "@@SCAN $chunk $r $(grep '^scan_last_irqoff_ns' $D/stats | cut -d' ' -f2)" \
			"$(grep '^scan_last_lock_holds' $D/stats | cut -d' ' -f2)" \
			"$(grep '^max_objects' $D/stats | cut -d' ' -f2)"
	done
done
exit 0
