#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Soak mlt.ko: boot a target several times and run rounds of leaky's
# alloc/free storm on every CPU while the reports are read (soak-guest.sh).
# For on-call digging, not for CI: it takes minutes per boot.
#
#   soak.sh [--boots N] [--rounds N] [--parallel] [TARGET] [-- PARAM=VALUE...]
#
# TARGET: x86_64-6.1, x86_64-6.12 (default) or arm64. PARAMs go to insmod
# mlt (e.g. stack_cache=0). --parallel runs QEMU with a host thread per
# vCPU, so the guest CPUs really run at once, and boots with tsc=reliable:
# that QEMU breaks live text patching (see run-qemu.sh), and the TSC
# watchdog is what patches text during a storm. Logs: kmod/build/logs/
# soak-<target>-<boot>.console.log. Exit status 0 when every boot finished
# every round cleanly.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KMOD=$(dirname "$HERE")
KMOD_CACHE=${KMOD_CACHE:-/var/cache/kmemfleet-kmod}
LOGS=$KMOD/build/logs
# shellcheck source=SCRIPTDIR/targets.sh
. "$HERE/targets.sh"

BOOTS=3 ROUNDS=20 ACCEL=tcg,thread=single APPEND="" TARGET=x86_64-6.12
while [ $# -gt 0 ]; do
	case "$1" in
	--boots) BOOTS=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--parallel) ACCEL=tcg APPEND=tsc=reliable; shift ;;
	--) shift; break ;;
	-h|--help) sed -n '3,17p' "$0"; exit 0 ;;
	-*) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
	*) TARGET=$1; shift ;;
	esac
done

resolve "$TARGET" || exit 2
miss=$(missing "$TARGET")
[ -z "$miss" ] || { echo "soak.sh: missing $miss (install with: bash .ci/install-kmod.sh)" >&2; exit 77; }
mkdir -p "$LOGS"
build=$KMOD/build/$TARGET
build_modules "$build" "$LOGS/$TARGET.build.log" ||
	{ cat "$LOGS/$TARGET.build.log"; exit 1; }

failed=0
for boot in $(seq 1 "$BOOTS"); do
	log=$LOGS/soak-$TARGET-$boot.console.log
	start=$(date +%s)
	"$HERE/run-qemu.sh" --arch "$QARCH" --kernel "$KERNEL" --accel "$ACCEL" \
		--module "$build/mlt/mlt.ko" --module "$build/leaky/leaky.ko" \
		--init-hook "$HERE/soak-guest.sh" --hook-args "$ROUNDS $*" \
		--append "$APPEND $KAPPEND" --log "$log" --timeout $((120 + ROUNDS * 30))
	rc=$?
	rounds=$(grep -ac '^@@SOAK round' "$log")
	# The kernel log must hold no warning, oops or lockup report.
	bad=$(grep -aE 'WARNING:|BUG:|Oops|Call Trace|soft lockup|rcu_.*stall' "$log" | head -n1)
	if [ "$rc" = 0 ] && [ "$rounds" = "$ROUNDS" ] && [ -z "$bad" ]; then
		echo "boot $boot: PASS, $rounds rounds in $(( $(date +%s) - start ))s"
	else
		echo "boot $boot: FAIL (exit $rc, $rounds/$ROUNDS rounds${bad:+, $bad}), log $log"
		grep -av '^[A-Za-z0-9+/=]*$' "$log" | tail -n 30
		failed=$((failed + 1))
	fi
done
echo "$TARGET: $((BOOTS - failed)) of $BOOTS boots passed"
[ $failed = 0 ]
