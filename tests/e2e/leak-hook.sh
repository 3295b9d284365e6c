#!/bin/sh
# Guest hook for tests/e2e/test_real_kernel_leaks.py, run as /hook.sh by
# kmod/tests/run-qemu.sh: load mlt.ko and leaky.ko (a steady leak and a steady
# alloc+free churn), run deploy/collector.sh into the 9p share at /host/leak,
# and note the ground truth: leaky's own leak counter with guest times.
#
#   hook.sh MLT_OPTS STEADY_MS STEADY_SIZE CHURN_MS CHURN_SIZE INTERVAL COUNT DEVICE FIRMWARE
#
# MLT_OPTS: insmod parameters of mlt.ko joined by commas (mode=full,depth=16).
. /lib/mlt-guest.sh
. /lib/e2e-guest.sh
mlt_opts=$(echo "$1" | tr ',' ' ')
steady_ms=$2 steady_size=$3 churn_ms=$4 churn_size=$5
interval=$6 count=$7 device=$8 firmware=$9

note clock "$(now)"
need_share || exit 3
# shellcheck disable=SC2086
insmod /modules/mlt.ko $mlt_opts || exit 4
insmod /modules/leaky.ko steady_ms="$steady_ms" steady_size="$steady_size" \
	churn_ms="$churn_ms" churn_size="$churn_size" || exit 5
trace_calls leaky_churn
rc=0
collect leak /sys/module/leaky/parameters/steady_leaked "$device" "$firmware" \
	"$interval" "$count" || rc=$?
trace_count churn_calls
head -n 2 /sys/kernel/debug/mlt/stacks
sync
exit "$rc"
