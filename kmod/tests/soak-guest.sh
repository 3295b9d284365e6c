#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# In-guest soak for mlt.ko, run by soak.sh as the init hook.
# Usage: soak-guest.sh ROUNDS [MLT_PARAM=VALUE...]
# Each round: leaky's alloc/free storm on every CPU for 3 s while all three
# reports are read in a loop and 300 transient stacks are made (leaky
# "branches": with a small max_stacks, records are reused all the while),
# then "@@SOAK round N reads N". The stack cache is warmed first with the
# stacks the main test uses.
. /lib/mlt-guest.sh

ROUNDS=${1:-20}
shift
D=/sys/kernel/debug/mlt
RUN=/sys/module/leaky/parameters/run

try insmod_leaky insmod /modules/leaky.ko
try insmod_mlt insmod /modules/mlt.ko mode=full "$@"
[ -d $D ] || exit 1
for cmd in "leak 10 400" "paths 40 25" freeall "irq 8" irqfree; do
	echo "$cmd" > $RUN
done
i=0
while [ $i -lt "$ROUNDS" ]; do
	echo "branches 300" > $RUN &
	reads=$(storm_reading 3000) || exit 1
	wait
	echo "@@SOAK round $i reads $reads"
	i=$((i + 1))
done
emit stats $D/stats
dmesg > /tmp/dmesg.txt
emit dmesg /tmp/dmesg.txt
try rmmod_mlt rmmod mlt
try rmmod_leaky rmmod leaky
exit 0
