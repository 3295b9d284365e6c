#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# In-guest scenario for a kernel booted with debugfs=off, run by
# run-qemu.sh as the init hook: mlt.ko must load without its report files
# and keep counting; its one output then is the OOM report in the kernel
# log. tests/check.py --scenario nodebugfs asserts on the host.
. /lib/mlt-guest.sh

P=/sys/module/mlt/parameters
RUN=/sys/module/leaky/parameters/run

note cmdline "$(cat /proc/cmdline)"
try insmod_leaky insmod /modules/leaky.ko
try insmod_mlt insmod /modules/mlt.ko mode=full
if [ -e /sys/kernel/debug/mlt ]; then
	note mlt_debugfs present
else
	note mlt_debugfs absent
fi
try leak sh -c "echo 'leak 50 1000' > $RUN"
try churn sh -c "echo 'churn 500' > $RUN"

# A real OOM: the report names what is outstanding, counted exactly.
echo 3600 > $P/oom_interval_s
dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null &
dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null
wait
# The report is printed by a work item, line by line: wait (bounded) for
# the row check.py asserts and the frame line after it, not a fixed time.
oom_row() {
	dmesg | grep 'mlt: ' | awk '
		h && /mlt: OOM:   leaky_leak_kmalloc\+/ { f = 1 }
		{ h = 0 }
		/mlt: OOM: #[0-9]+ bytes 50000 objects 50$/ { h = 1 }
		END { exit !f }'
}
i=0
while [ $i -lt 60 ] && ! oom_row; do
	sleep 0.5
	i=$((i + 1))
done
dmesg | grep 'mlt: ' > /tmp/mlt.txt
emit mlt_log /tmp/mlt.txt
dmesg > /tmp/dmesg.txt
emit dmesg /tmp/dmesg.txt
try rmmod_mlt rmmod mlt
try rmmod_leaky rmmod leaky
exit 0
