#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kmalloc(64)+kfree cost under mlt.ko, in one QEMU (TCG) boot of the Debian
# 6.1 x86_64 kernel: no probe, the counting-only probe (floor of any
# tracepoint tracker), mlt sampled (default sample_bytes), mlt full (default
# depth 16 with and without the stack cache, and depth 4); the same for
# page alloc+free of order 0 and 2 (no probe, counting floor, sampled,
# full); plus the memory per tracked object from mlt's stats.
#
#   bench/kmod/run-bench.sh [REPS] [OPS] [K]  (defaults 31, 50000 and 5)
#   BENCH_ARCH=arm64 bench/kmod/run-bench.sh  (the cross-built arm64 module)
#   ICOUNT=0 bench/kmod/run-bench.sh 5        QEMU -icount shift=0,sleep=off:
#                                       guest time is the instruction count
#                                       (1 ns each), immune to host load;
#                                       memory costs are not modelled
#
# The host is noisy (QEMU TCG shares the cores with everything else), so
# every repetition runs all the configurations back to back (the counting
# floor's and sampled's kmalloc runs next to each other, in alternating
# order: the target's pair as close in time as set-up allows), each as an
# untimed run (what a configuration change costs the first run: QEMU
# retranslating patched code, the module's first slow paths) then K timed
# runs of OPS / K pairs; a repetition's figure for a configuration is the
# least of its K (host preemption only adds time). Ratios are medians of
# the per-repetition (paired) ratios with a 95 % confidence interval, and,
# as a check, the same from the median of each K (bench/kmod/benchstat.py).
# BENCH_SMP (default 1) sets the vCPUs: the loop is single-threaded, and
# one vCPU leaves a host core to the rest.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KMOD=$(cd "$HERE/../../kmod" && pwd)
REPS=${1:-31}
OPS=${2:-50000}
K=${3:-5}
KMOD_CACHE=${KMOD_CACHE:-/var/cache/kmemfleet-kmod}
if [ "${BENCH_ARCH:-x86_64}" = arm64 ]; then
	# Cross-built, booted with qemu-system-aarch64 -M virt -cpu max.
	KERNEL=${KERNEL:-$KMOD_CACHE/arm64/vmlinuz}
	KDIR=${KDIR:-$KMOD_CACHE/arm64/headers}
	REL=arm64-$(basename "$(readlink -f "$KERNEL")")
	MAKEARGS=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
	QARCH=arm64
else
	KERNEL=${KERNEL:-$(ls -d /boot/vmlinuz-6.1.0-*-amd64 | sort -V | tail -n1)}
	REL=${KERNEL#/boot/vmlinuz-}
	KDIR=${KDIR:-/usr/src/linux-headers-$REL}
	MAKEARGS=()
	QARCH=x86_64
fi
BUILD=$KMOD/build/bench-$REL
LOG=$KMOD/build/logs/bench-$QARCH${ICOUNT:+-icount}.console.log
mkdir -p "$KMOD/build/logs"

make -s -C "$KMOD" "${MAKEARGS[@]}" KDIR="$KDIR" BUILD="$BUILD" >/dev/null 2>&1
"$KMOD/tests/run-qemu.sh" --arch "$QARCH" --kernel "$KERNEL" \
	--module "$BUILD/mlt/mlt.ko" --module "$BUILD/bench/mlt_bench.ko" \
	--extra-file "$HERE/measure.sh:/lib/mlt-measure.sh" \
	--init-hook "$HERE/bench-guest.sh" --hook-args "$REPS $OPS $K" \
	--smp "${BENCH_SMP:-1}" ${ICOUNT:+--icount "$ICOUNT"} --log "$LOG" --timeout 900
echo "host load average: $(cut -d' ' -f1-3 /proc/loadavg)"

PYTHONPATH=$HERE python3 - "$LOG" "$KERNEL" "$REPS" "$OPS" "$K" "${ICOUNT:+icount}" <<'PY'
import base64, statistics, sys
import benchstat as bs
log, kernel, reps, ops, k, icount = sys.argv[1:]
runs, other = bs.load(log)
least, mid = bs.per_rep(runs, min), bs.per_rep(runs, statistics.median)
stats, cur, buf = {}, None, []
for ln in other:
    if ln.startswith("@@BEGIN "):
        cur, buf = ln[8:], []
    elif ln.startswith("@@END ") and cur:
        for kv in base64.b64decode("".join(buf)).decode().splitlines():
            key, _, v = kv.partition(" ")
            stats[key] = v
        cur = None
    elif cur:
        buf.append(ln)
unit = "instructions (QEMU -icount, 1 ns each)" if icount else "ns, QEMU TCG"
print("kernel %s, %s, %s reps x %s kmalloc(64)+kfree in %s timed runs each (least of them)"
      % (kernel, unit, reps, ops, k))
for c in ("none", "count", "sampled", "full", "full_walk", "full_depth4",
          "none_s8", "full_s8", "full_walk_s8"):
    print("  %-12s %s" % (c, bs.describe(least, c)))
print("ratios:                     %s" % bs.RATIO_HEAD)
for a, b, target in (("count", "none", ""), ("sampled", "count", "(target <= 1.10x)"),
                     ("sampled", "none", ""), ("full", "none", "(target <= 8x)"),
                     ("full_walk", "none", "(stack_cache=0: every stack walked)"),
                     ("full_depth4", "none", "(depth=4)"),
                     ("full_s8", "none_s8", "(8 stacks from one call site)"),
                     ("full_walk_s8", "none_s8", "(8 stacks, stack_cache=0)")):
    print("  %-12s / %-7s  %s   %s" % (a, b, bs.ratio_line(least, mid, a, b), target))
po = int(stats["bytes_per_object"])
print("page alloc+free (alloc_pages(GFP_KERNEL, order) + __free_pages), %d per config, same boot:"
      % (int(ops) // 10))
for o in (0, 2):
    for c in ("none", "count", "sampled", "full"):
        print("  order %d %-8s %s" % (o, c, bs.describe(least, "%s_p%d" % (c, o))))
    for a, b, target in (("count", "none", ""), ("sampled", "count", "(target <= 1.10x)"),
                         ("sampled", "none", ""), ("full", "none", "")):
        print("  order %d %-8s / %-6s  %s   %s" % (
            o, a, b, bs.ratio_line(least, mid, "%s_p%d" % (a, o), "%s_p%d" % (b, o)), target))
print("memory: %d bytes per tracked object (pool entry + hash bucket share; target <= 48)" % po)
print("        %s bytes per distinct stack; pool %s bytes for %s objects and %s stacks = %.1f bytes per object all-in"
      % (stats["bytes_per_stack"], stats["pool_bytes"], stats["max_objects"], stats["max_stacks"],
         int(stats["pool_bytes"]) / int(stats["max_objects"])))
PY
