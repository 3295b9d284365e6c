#!/bin/sh
# Guest hook for tests/e2e/test_real_kernel_leaks.py, run as /hook.sh by
# kmod/tests/run-qemu.sh: load mlt.ko and leaky.ko (a steady leak and a steady
# alloc+free churn), run deploy/collector.sh into the 9p share at /host, and
# note the ground truth: leaky's own leak counter with guest times.
#
#   hook.sh MLT_OPTS STEADY_MS STEADY_SIZE CHURN_MS CHURN_SIZE INTERVAL COUNT DEVICE FIRMWARE
#
# MLT_OPTS: insmod parameters of mlt.ko joined by commas (mode=full,depth=16).
. /lib/mlt-guest.sh
mlt_opts=$(echo "$1" | tr ',' ' ')
steady_ms=$2 steady_size=$3 churn_ms=$4 churn_size=$5
interval=$6 count=$7 device=$8 firmware=$9

now() { echo "$(date +%s) $(cut -d' ' -f1 /proc/uptime)"; }

note clock "$(now)"
grep -q ' /host ' /proc/mounts || { echo "@@GUEST-WARN no 9p share at /host"; exit 3; }
# shellcheck disable=SC2086
insmod /modules/mlt.ko $mlt_opts || exit 4
insmod /modules/leaky.ko steady_ms="$steady_ms" steady_size="$steady_size" \
	churn_ms="$churn_ms" churn_size="$churn_size" || exit 5
p=/sys/module/leaky/parameters
# Count the calls of leaky_churn during the collection with the function
# tracer (only that function is traced), so the test knows the churn ran.
t=/sys/kernel/debug/tracing
if [ -w $t/set_ftrace_filter ] && echo leaky_churn > $t/set_ftrace_filter &&
	echo function > $t/current_tracer; then
	tracing=1
else
	tracing=0
fi
# leak_start/leak_end: unix seconds, uptime seconds, objects leaked so far.
note leak_start "$(now) $(cat $p/steady_leaked)"
rc=0
/bin/collector.sh -d "$device" -f "$firmware" -l source=qemu-e2e \
	/host/bundle "$interval" "$count" || rc=$?
note leak_end "$(now) $(cat $p/steady_leaked)"
note collector_rc "$rc"
if [ $tracing = 1 ]; then
	echo 0 > $t/tracing_on
	note churn_calls "$(grep -c ': leaky_churn' $t/trace)"
	echo nop > $t/current_tracer
fi
head -n 2 /sys/kernel/debug/mlt/stacks
sync
exit "$rc"
