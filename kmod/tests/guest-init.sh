#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the test initramfs built by run-qemu.sh.
/bin/busybox mkdir -p /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
if [ -d /modules/9p ]; then
	for m in /modules/9p/*.ko; do
		insmod "$m" 2>/dev/null
	done
	mount -t 9p -o trans=virtio,version=9p2000.L host /host ||
		echo "@@GUEST-WARN cannot mount the 9p share"
fi
exec </dev/console >/dev/console 2>&1
. /lib/mlt-guest.sh
echo "@@GUEST-START $(uname -r) $(uname -m) cpus=$(nproc)"
rc=0
if [ -x /hook.sh ]; then
	# shellcheck disable=SC2046
	/hook.sh $(cat /hook.args) || rc=$?
fi
sync
echo "@@GUEST-DONE $rc"
poweroff -f
