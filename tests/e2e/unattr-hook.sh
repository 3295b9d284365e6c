#!/bin/sh
# Guest hook for tests/e2e/test_real_kernel_unattributed.py, run as /hook.sh by
# kmod/tests/run-qemu.sh. No mlt.ko: only leaky.ko, whose steady worker churns
# page allocations (alloc_pages + __free_pages of CHURN_ORDER every CHURN_MS)
# all along. Two collections by deploy/collector.sh into the 9p share, each as
# its own device and firmware:
#
#   vmalloc  (device qemu-e2e-vmalloc, firmware e2e-vmalloc-1.0): one vmalloc
#            area of VM_BYTES leaked every VM_PERIOD s by leaky_leak_vmalloc;
#            ground truth: the areas this hook leaked;
#   pages    (device qemu-e2e-pages, firmware e2e-pages-1.0): one
#            alloc_pages(GFP_KERNEL, STEADY_ORDER) leaked every STEADY_MS ms
#            by leaky_steady_leak; ground truth: leaky's steady_leaked.
#
#   hook.sh STEADY_MS STEADY_ORDER CHURN_MS CHURN_ORDER VM_BYTES VM_PERIOD INTERVAL COUNT
. /lib/mlt-guest.sh
. /lib/e2e-guest.sh
steady_ms=$1 steady_order=$2 churn_ms=$3 churn_order=$4
vm_bytes=$5 vm_period=$6 interval=$7 count=$8
p=/sys/module/leaky/parameters

# vm_leak: one leaked vmalloc area a VM_PERIOD while /tmp/vm_on exists, the
# count of areas leaked kept in /tmp/vm_areas (replaced whole: never read half).
vm_leak() {
	n=0
	while [ -e /tmp/vm_on ]; do
		echo "vmalloc 1 $vm_bytes" > $p/run && n=$((n + 1))
		echo "$n" > /tmp/vm_areas.new && mv /tmp/vm_areas.new /tmp/vm_areas
		sleep "$vm_period"
	done
}

note clock "$(now)"
need_share || exit 3
[ -d /sys/module/mlt ] && { echo "@@GUEST-WARN mlt is loaded"; exit 4; }
insmod /modules/leaky.ko steady_order="$steady_order" churn_ms="$churn_ms" \
	churn_order="$churn_order" || exit 5
trace_calls leaky_churn
rc=0

echo 0 > /tmp/vm_areas
touch /tmp/vm_on
vm_leak &
vm_pid=$!
collect vmalloc /tmp/vm_areas qemu-e2e-vmalloc e2e-vmalloc-1.0 "$interval" "$count" || rc=$?
rm /tmp/vm_on
wait "$vm_pid"

echo "$steady_ms" > $p/steady_ms
collect pages $p/steady_leaked qemu-e2e-pages e2e-pages-1.0 "$interval" "$count" || rc=$?
echo 0 > $p/steady_ms
trace_count churn_calls
sync
exit "$rc"
