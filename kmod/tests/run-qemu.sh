#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot a kernel under QEMU (TCG) with a busybox initramfs, run a hook script
# in the guest, and capture the serial console.
#
#   run-qemu.sh --kernel VMLINUZ [--arch x86_64|arm64] [--module KO]...
#               [--extra-file SRC:DST]... [--init-hook SCRIPT] [--hook-args "A B"]
#               [--log FILE] [--timeout SEC] [--mem MB] [--smp N]
#               [--append "kernel args"] [--share DIR] [--accel ACCEL]
#               [--icount SHIFT] [--disk IMAGE]
#
# The guest mounts proc, sysfs, devtmpfs and debugfs, puts modules in
# /modules, sources /lib/mlt-guest.sh (helpers: emit NAME FILE prints a file
# base64-encoded between "@@BEGIN NAME" and "@@END NAME" lines; see
# kmod/tests/extract.py to get files back on the host), runs /hook.sh with the
# hook arguments, prints "@@GUEST-DONE <rc>" and powers off.
# --share DIR exports DIR over virtio-9p as mount tag "host"; the guest
# mounts it read-write at /host (the kernel's 9p modules are added to the
# initramfs from its /lib/modules, running depmod there if needed).
# --disk IMAGE attaches IMAGE (raw) as a virtio disk; the kernel's
# virtio_blk and ext4 modules (and their dependencies) are put in
# /modules/disk, numbered in load order, for the hook to load (/dev/vda).
# --accel is QEMU's -accel (default tcg,thread=single, see below).
# --icount SHIFT: QEMU's -icount shift=SHIFT,sleep=off: guest time is the
# instruction count (2^SHIFT ns each), so the host's load does not stretch
# what the guest measures (for timing a code path, not for tests).
#
# Exit status: the hook's status, 124 on timeout, 125 if the guest died
# (panic, oops with oops=panic, WARN with panic_on_warn=1) before finishing.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KERNEL="" ARCH=x86_64 LOG="" TIMEOUT=300 MEM=512 SMP=2 APPEND="" SHARE="" ICOUNT=""
HOOK="" HOOK_ARGS="" ACCEL=tcg,thread=single DISK=""
MODULES=() EXTRAS=()

usage() { sed -n '3,28p' "$0" >&2; exit 2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=$2; shift 2 ;;
	--arch) ARCH=$2; shift 2 ;;
	--module) MODULES+=("$2"); shift 2 ;;
	--extra-file) EXTRAS+=("$2"); shift 2 ;;
	--init-hook) HOOK=$2; shift 2 ;;
	--hook-args) HOOK_ARGS=$2; shift 2 ;;
	--log) LOG=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--append) APPEND=$2; shift 2 ;;
	--share) SHARE=$2; shift 2 ;;
	--accel) ACCEL=$2; shift 2 ;;
	--icount) ICOUNT=$2; shift 2 ;;
	--disk) DISK=$2; shift 2 ;;
	-h|--help) usage ;;
	*) echo "run-qemu.sh: unknown option $1" >&2; usage ;;
	esac
done
[ -n "$KERNEL" ] || usage
[ -r "$KERNEL" ] || { echo "run-qemu.sh: cannot read kernel $KERNEL" >&2; exit 2; }

BUSYBOX=${BUSYBOX:-/bin/busybox}	# busybox-static
case "$ARCH" in
x86_64)
	QEMU=qemu-system-x86_64
	MACHINE=(-M pc -cpu max)
	CONSOLE=ttyS0
	;;
arm64|aarch64)
	QEMU=qemu-system-aarch64
	MACHINE=(-M virt -cpu max)
	CONSOLE=ttyAMA0
	# The x86_64 busybox cannot run in an arm64 guest: use the arm64
	# busybox-static extracted by .ci/install-kmod.sh.
	BUSYBOX=${BUSYBOX_ARM64:-/var/cache/kmemfleet-kmod/arm64/rootfs/bin/busybox}
	;;
*) echo "run-qemu.sh: unknown arch $ARCH" >&2; exit 2 ;;
esac
command -v "$QEMU" >/dev/null || { echo "run-qemu.sh: $QEMU not installed" >&2; exit 2; }
[ -x "$BUSYBOX" ] || { echo "run-qemu.sh: no static busybox for $ARCH at $BUSYBOX" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/initramfs
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,modules,lib,host}
cp "$BUSYBOX" "$ROOT/bin/busybox"
cp "$HERE/guest-init.sh" "$ROOT/init"
cp "$HERE/mlt-guest.sh" "$ROOT/lib/mlt-guest.sh"
chmod 755 "$ROOT/init"
for m in "${MODULES[@]}"; do
	cp "$m" "$ROOT/modules/"
done
for e in "${EXTRAS[@]}"; do
	src=${e%%:*} dst=${e#*:}
	mkdir -p "$ROOT/$(dirname "$dst")"
	cp -r "$src" "$ROOT/$dst"
done
if [ -n "$HOOK" ]; then
	cp "$HOOK" "$ROOT/hook.sh"
	chmod 755 "$ROOT/hook.sh"
fi
printf '%s\n' "$HOOK_ARGS" > "$ROOT/hook.args"
# kernel_modules DIR MODULE...: the booted kernel's MODULEs and their
# dependencies, decompressed for busybox insmod, into the initramfs's
# /modules/DIR as NN-name.ko in load order (built-in ones are left out).
kernel_modules() {
	local dir=$ROOT/modules/$1 kreal krel modroot n=10
	shift
	kreal=$(readlink -f "$KERNEL")
	krel=$(basename "$kreal")
	krel=${krel#vmlinuz-}
	modroot=$(dirname "$(dirname "$kreal")")	# /boot/.. or an extracted root
	[ -f "$modroot/lib/modules/$krel/modules.dep" ] || depmod -b "$modroot" "$krel"
	mkdir -p "$dir"
	for m in "$@"; do
		modprobe -d "$modroot" -S "$krel" --show-depends "$m" |
			sed -n 's/^insmod \([^ ]*\).*/\1/p'
	done | awk '!seen[$0]++' | while read -r ko; do
		name=$(basename "$ko")
		case "$ko" in
		*.xz) xz -dc "$ko" > "$dir/$n-${name%.xz}" ;;
		*.zst) zstd -qdc "$ko" > "$dir/$n-${name%.zst}" ;;
		*) cp "$ko" "$dir/$n-$name" ;;
		esac
		n=$((n + 1))
	done
}
[ -z "$SHARE" ] || kernel_modules 9p virtio_pci 9pnet_virtio 9p
[ -z "$DISK" ] || kernel_modules disk virtio_pci virtio_blk ext4

(cd "$ROOT" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"

LOG=${LOG:-$WORK/console.log}
: > "$LOG"
EXTRA_DEV=()
if [ -n "$SHARE" ]; then
	EXTRA_DEV=(-virtfs "local,path=$SHARE,mount_tag=host,security_model=none")
fi
if [ -n "$ICOUNT" ]; then
	EXTRA_DEV+=(-icount "shift=$ICOUNT,sleep=off")
fi
if [ -n "$DISK" ]; then
	EXTRA_DEV+=(-drive "file=$DISK,format=raw,if=none,id=disk0"
		    -device "virtio-blk-pci,drive=disk0")
fi

# TCG only: KVM is not assumed (and hangs on some CI hosts). By default
# one host thread runs all vCPUs (--accel tcg,thread=single): with a
# thread per vCPU, QEMU 7.2 lets a vCPU run code another vCPU has just
# rewritten, which breaks the kernel's live text patching (static keys,
# tracepoints: "Oops: int3" or a soft lockup in text_poke_bp). The guest
# still runs -smp CPUs, interleaved, so races between CPUs are exercised.
# loglevel=5: warnings and oopses reach the log, so a guest that dies says
# why; routine boot chatter does not.
rc=0
timeout --foreground -k 10 "$TIMEOUT" \
	"$QEMU" "${MACHINE[@]}" -accel "$ACCEL" -smp "$SMP" -m "$MEM" \
	-kernel "$KERNEL" -initrd "$WORK/initrd.cpio" \
	-append "console=$CONSOLE loglevel=5 oops=panic panic_on_warn=1 panic=-1 $APPEND" \
	-display none -monitor none -serial "file:$LOG" -no-reboot \
	"${EXTRA_DEV[@]}" </dev/null || rc=$?

if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "run-qemu.sh: timeout after ${TIMEOUT}s" >&2
	exit 124
fi
done_line=$(grep -a '^@@GUEST-DONE' "$LOG" | tail -n1 | tr -d '\r' || true)
if [ -z "$done_line" ]; then
	echo "run-qemu.sh: guest did not finish (panic or crash); see $LOG" >&2
	exit 125
fi
exit "${done_line#@@GUEST-DONE }"
