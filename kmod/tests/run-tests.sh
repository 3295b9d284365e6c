#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build mlt.ko, leaky.ko and lodger.ko for a kernel, boot it under QEMU, run
# guest-tests.sh and check the console log.
#
#   run-tests.sh TARGET...     TARGET: x86_64-6.1 | x86_64-6.12 | arm64 |
#                              x86_64-5.10 | x86_64-6.1-rt | all
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

# shellcheck source=SCRIPTDIR/targets.sh
. "$HERE/targets.sh"

total_pass=0 total_fail=0 status=0
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
[ "${targets[0]}" = all ] && targets=("${ALL_TARGETS[@]}")

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
	if ! build_modules "$build" "$LOGS/$tgt.build.log"; then
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
	p=$((1 - build_fail)) f=$build_fail
	# The suite, then (NODEBUGFS targets) a short boot with debugfs=off.
	for scen in main nodebugfs; do
		if [ $scen = main ]; then
			log=$LOGS/$tgt.console.log hook=guest-tests.sh
			append=$KAPPEND
		else
			[ "$NODEBUGFS" = 1 ] || continue
			log=$LOGS/$tgt.nodebugfs.console.log hook=guest-nodebugfs.sh
			append="$KAPPEND debugfs=off"
		fi
		# The main suite's block device: an ext2 file system (guest-tests.sh).
		disk=()
		if [ $scen = main ]; then
			rm -f "$build/disk.img"
			truncate -s 8M "$build/disk.img" &&
				mke2fs -q -F -t ext2 "$build/disk.img" &&
				disk=(--disk "$build/disk.img")
		fi
		start=$(date +%s)
		"$HERE/run-qemu.sh" --arch "$QARCH" --kernel "$KERNEL" \
			--module "$build/mlt/mlt.ko" --module "$build/leaky/leaky.ko" \
			--module "$build/leaky/lodger.ko" --init-hook "$HERE/$hook" --hook-args "$LEVEL" \
			--append "$append" --log "$log" --timeout "$TIMEOUT" "${disk[@]}"
		qrc=$?
		echo "boot ($scen): exit $qrc after $(( $(date +%s) - start ))s, log $log"
		out=$(python3 "$HERE/check.py" "$log" --level "$LEVEL" --scenario $scen)
		echo "$out" | sed '$d'
		last=$(echo "$out" | tail -n1)
		sp=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
		sf=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
		p=$(( p + ${sp:-0} )) f=$(( f + ${sf:-1} ))
		if [ "${sf:-1}" != 0 ]; then
			echo "--- last 40 console lines of $tgt ($scen) ---"
			tail -n 40 "$log" | grep -av '^[A-Za-z0-9+/=]*$'
		fi
	done
	[ "$f" = 0 ] || status=1
	echo "$tgt: $p passed, $f failed"
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
done
echo "$total_pass passed, $total_fail failed"
if [ $total_fail != 0 ]; then
	exit 1
fi
exit $status
