#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build mlt.ko and leaky.ko for a kernel, boot it under QEMU, run
# guest-tests.sh and check the console log.
#
#   run-tests.sh TARGET...     TARGET: x86_64-6.1 | x86_64-6.12 | arm64 | all
#
# Each target prints "<target>: N passed, N failed"; the closing line is
# the total, "N passed, N failed", alone on a line. Exit status 0 if all
# passed, 77 if a prerequisite is missing (nothing run for that target),
# 1 otherwise. Logs are kept in kmod/build/logs/.
#
# Environment: KMOD_CACHE (default /var/cache/kmemfleet-kmod, filled by
# .ci/install-kmod.sh), QEMU_TIMEOUT (seconds per boot).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KMOD=$(dirname "$HERE")
KMOD_CACHE=${KMOD_CACHE:-/var/cache/kmemfleet-kmod}
LOGS=$KMOD/build/logs
mkdir -p "$LOGS"
HINT="install with: bash .ci/install-kmod.sh"

newest() { ls -d $1 2>/dev/null | sort -V | tail -n1; }

# target -> ARCH QEMU_ARCH KERNEL KDIR LEVEL TIMEOUT CROSS
resolve() {
	local rel
	case "$1" in
	x86_64-6.1)
		KERNEL=$(newest '/boot/vmlinuz-6.1.0-*-amd64')
		rel=${KERNEL#/boot/vmlinuz-}
		KDIR=/usr/src/linux-headers-$rel
		ARCH=x86 QARCH=x86_64 LEVEL=full TIMEOUT=240 CROSS=""
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
		ARCH=arm64 QARCH=arm64 LEVEL=full TIMEOUT=360 CROSS=aarch64-linux-gnu-
		;;
	*) echo "run-tests.sh: unknown target $1" >&2; return 2 ;;
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
	if [ "$QARCH" = arm64 ]; then
		command -v aarch64-linux-gnu-gcc >/dev/null || m+=(gcc-aarch64-linux-gnu)
		[ -x "$KMOD_CACHE/arm64/rootfs/bin/busybox" ] || m+=("arm64 busybox in $KMOD_CACHE")
	fi
	[ ${#m[@]} -eq 0 ] || (IFS=","; echo "${m[*]}" | sed "s/,/, /g")
}

total_pass=0 total_fail=0 status=0
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
[ "${targets[0]}" = all ] && targets=(x86_64-6.1 x86_64-6.12 arm64)

for tgt in "${targets[@]}"; do
	resolve "$tgt" || exit 2
	miss=$(missing "$tgt")
	if [ -n "$miss" ]; then
		echo "$tgt: SKIP: missing $miss ($HINT)"
		[ $status = 0 ] && status=77
		continue
	fi
	echo "== $tgt: $KERNEL"
	build=$KMOD/build/$tgt
	if ! make -s -C "$KMOD" ARCH=$ARCH ${CROSS:+CROSS_COMPILE=$CROSS} \
		KDIR="$KDIR" BUILD="$build" > "$LOGS/$tgt.build.log" 2>&1; then
		cat "$LOGS/$tgt.build.log"
		echo "$tgt: 0 passed, 1 failed"
		total_fail=$((total_fail + 1)) status=1
		continue
	fi
	if grep -E -i 'warning|error' "$LOGS/$tgt.build.log" | grep -v 'Skipping BTF'; then
		echo "FAIL build_without_warnings"
		build_fail=1
	else
		echo "PASS build_without_warnings"
		build_fail=0
	fi
	log=$LOGS/$tgt.console.log
	start=$(date +%s)
	"$HERE/run-qemu.sh" --arch "$QARCH" --kernel "$KERNEL" \
		--module "$build/mlt/mlt.ko" --module "$build/leaky/leaky.ko" \
		--init-hook "$HERE/guest-tests.sh" --hook-args "$LEVEL" \
		--log "$log" --timeout "$TIMEOUT"
	qrc=$?
	echo "boot: exit $qrc after $(( $(date +%s) - start ))s, log $log"
	out=$(python3 "$HERE/check.py" "$log" --level "$LEVEL")
	echo "$out" | sed '$d'
	last=$(echo "$out" | tail -n1)
	p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
	f=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
	p=$(( ${p:-0} + 1 - build_fail )) f=$(( ${f:-1} + build_fail ))
	if [ "$f" != 0 ]; then
		echo "--- last 40 console lines of $tgt ---"
		tail -n 40 "$log" | grep -av '^[A-Za-z0-9+/=]*$'
		status=1
	fi
	echo "$tgt: $p passed, $f failed"
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
done
echo "$total_pass passed, $total_fail failed"
if [ $total_fail != 0 ]; then
	exit 1
fi
exit $status
