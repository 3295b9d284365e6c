# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2034  # the variables are for the sourcing script
#
# Test targets, sourced by run-tests.sh and soak.sh. Needs KMOD and
# KMOD_CACHE set.
# resolve TARGET sets ARCH QARCH KERNEL KDIR LEVEL TIMEOUT CROSS KCC KAPPEND
# NODEBUGFS;
# missing TARGET prints what the target lacks, nothing when it is ready;
# build_modules BUILD LOG builds mlt.ko, leaky.ko and lodger.ko for the resolved
# target into BUILD, compiler output to LOG.

newest() { ls -d $1 2>/dev/null | sort -V | tail -n1; }

# Every target, in the order "all" runs them.
ALL_TARGETS=(x86_64-6.1 x86_64-6.12 arm64 x86_64-5.10 x86_64-6.1-rt)

# target -> ARCH QEMU_ARCH KERNEL KDIR LEVEL TIMEOUT CROSS KCC KAPPEND
# (KCC: compiler for the build; KAPPEND: extra kernel command line;
# NODEBUGFS=1: also boot once with debugfs=off, guest-nodebugfs.sh)
resolve() {
	local rel
	KCC="" KAPPEND="" NODEBUGFS=""
	case "$1" in
	x86_64-6.1)
		KERNEL=$(newest '/boot/vmlinuz-6.1.0-*-amd64')
		rel=${KERNEL#/boot/vmlinuz-}
		KDIR=/usr/src/linux-headers-$rel
		ARCH=x86 QARCH=x86_64 LEVEL=full TIMEOUT=240 CROSS="" NODEBUGFS=1
		;;
	x86_64-6.12)
		KERNEL=$(newest '/boot/vmlinuz-6.12.*-amd64')
		rel=${KERNEL#/boot/vmlinuz-}
		KDIR=/usr/src/linux-headers-$rel
		ARCH=x86 QARCH=x86_64 LEVEL=full TIMEOUT=240 CROSS=""
		;;
	arm64)
		KERNEL=$KMOD_CACHE/arm64/vmlinuz
		KDIR=$KMOD_CACHE/arm64/headers
		ARCH=arm64 QARCH=arm64 LEVEL=full TIMEOUT=420 CROSS=aarch64-linux-gnu-
		;;
	x86_64-5.10)
		# Debian 11's kernel, extracted by .ci/install-kmod.sh. Its
		# headers name gcc-10, which Debian 12 lacks: build with gcc.
		KERNEL=$KMOD_CACHE/x86_64-5.10/vmlinuz
		KDIR=$KMOD_CACHE/x86_64-5.10/headers
		ARCH=x86 QARCH=x86_64 LEVEL=full TIMEOUT=240 CROSS="" KCC=gcc
		;;
	x86_64-6.1-rt)
		# Debian 12's PREEMPT_RT kernel, extracted by .ci/install-kmod.sh.
		# Its serial interrupt is threaded; under a loaded TCG host the
		# thread can fall behind and the spurious-interrupt detector then
		# disables the console's IRQ ("irq 4: nobody cared"): noirqdebug.
		KERNEL=$KMOD_CACHE/x86_64-6.1-rt/vmlinuz
		KDIR=$KMOD_CACHE/x86_64-6.1-rt/headers
		ARCH=x86 QARCH=x86_64 LEVEL=full TIMEOUT=240 CROSS="" KAPPEND=noirqdebug
		;;
	*) echo "unknown target $1 (${ALL_TARGETS[*]})" >&2; return 2 ;;
	esac
	TIMEOUT=${QEMU_TIMEOUT:-$TIMEOUT}
}

# Print what is missing for a target, if anything.
missing() {
	local q=qemu-system-x86_64 m=()
	[ "$QARCH" = arm64 ] && q=qemu-system-aarch64
	command -v "$q" >/dev/null || m+=("$q")
	[ -n "$KERNEL" ] && [ -r "$KERNEL" ] || m+=("kernel image for $1")
	[ -f "$KDIR/Makefile" ] || m+=("kernel headers $KDIR")
	[ -x /bin/busybox ] || m+=("busybox-static")
	command -v cpio >/dev/null || m+=(cpio)
	command -v python3 >/dev/null || m+=(python3)
	command -v mke2fs >/dev/null || m+=(e2fsprogs)
	if [ "$QARCH" = arm64 ]; then
		command -v aarch64-linux-gnu-gcc >/dev/null || m+=(gcc-aarch64-linux-gnu)
		[ -x "$KMOD_CACHE/arm64/rootfs/bin/busybox" ] || m+=("arm64 busybox in $KMOD_CACHE")
	fi
	[ ${#m[@]} -eq 0 ] || (IFS=","; echo "${m[*]}" | sed "s/,/, /g")
}

build_modules() {
	make -s -C "$KMOD" ARCH="$ARCH" ${CROSS:+CROSS_COMPILE=$CROSS} \
		${KCC:+CC=$KCC} KDIR="$KDIR" BUILD="$1" > "$2" 2>&1
}
