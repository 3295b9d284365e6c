#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kmalloc(64)+kfree cost under mlt.ko, in one QEMU (TCG) boot of the Debian
# 6.1 x86_64 kernel: no probe, the counting-only probe (floor of any
# tracepoint tracker), mlt sampled (default sample_bytes), mlt full (default
# depth 16 with and without the stack cache, and depth 4); the same for
# page alloc+free of order 0 and 2 (no probe, counting floor, sampled,
# full); plus the memory per tracked object from mlt's stats. Medians over
# REPS repetitions.
#
#   bench/kmod/run-bench.sh [REPS] [OPS]      (defaults 31 and 50000)
#   BENCH_ARCH=arm64 bench/kmod/run-bench.sh  (the cross-built arm64 module)
#
# The host is noisy (QEMU TCG shares the cores with everything else), so
# every repetition runs all four configurations back to back, and the
# ratios are reported both as ratios of medians and as medians of the
# per-repetition (paired) ratios. BENCH_SMP (default 1) sets the vCPUs: the
# loop is single-threaded, and one vCPU leaves a host core to the rest.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KMOD=$(cd "$HERE/../../kmod" && pwd)
REPS=${1:-31}
OPS=${2:-50000}
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
LOG=$KMOD/build/logs/bench-$QARCH.console.log
mkdir -p "$KMOD/build/logs"

make -s -C "$KMOD" "${MAKEARGS[@]}" KDIR="$KDIR" BUILD="$BUILD" >/dev/null 2>&1
"$KMOD/tests/run-qemu.sh" --arch "$QARCH" --kernel "$KERNEL" \
	--module "$BUILD/mlt/mlt.ko" --module "$BUILD/bench/mlt_bench.ko" \
	--init-hook "$HERE/bench-guest.sh" --hook-args "$REPS $OPS" \
	--smp "${BENCH_SMP:-1}" --log "$LOG" --timeout 900

python3 - "$LOG" "$KERNEL" "$REPS" "$OPS" <<'PY'
import base64, statistics, sys
log, kernel, reps, ops = sys.argv[1:]
runs, byrep, stats, cur, buf = {}, {}, {}, None, []
for ln in open(log, "rb").read().decode("latin-1").splitlines():
    ln = ln.rstrip("\r")
    if ln.startswith("@@BENCH "):
        _, cfg, rep, ps = ln.split()
        runs.setdefault(cfg, []).append(int(ps) / 1000.0)
        byrep.setdefault(rep, {})[cfg] = int(ps) / 1000.0
    elif ln.startswith("@@BEGIN "):
        cur, buf = ln[8:], []
    elif ln.startswith("@@END ") and cur:
        for kv in base64.b64decode("".join(buf)).decode().splitlines():
            k, _, v = kv.partition(" ")
            stats[k] = v
        cur = None
    elif cur:
        buf.append(ln)
med = {k: statistics.median(v) for k, v in runs.items()}
print("kernel %s, QEMU TCG, %s reps x %s kmalloc(64)+kfree" % (kernel, reps, ops))
for k in ("none", "count", "sampled", "full", "full_walk", "full_depth4",
          "none_s8", "full_s8", "full_walk_s8"):
    v = runs[k]
    print("  %-12s median %8.1f ns/op   (min %.1f, max %.1f)" % (k, med[k], min(v), max(v)))
def paired(a, b):
    return statistics.median(r[a] / r[b] for r in byrep.values() if a in r and b in r)
print("ratios:                     of medians   median of paired")
for a, b, target in (("count", "none", ""), ("sampled", "count", "(target <= 1.10x)"),
                     ("sampled", "none", ""), ("full", "none", "(target <= 8x)"),
                     ("full_walk", "none", "(stack_cache=0: every stack walked)"),
                     ("full_depth4", "none", "(depth=4)"),
                     ("full_s8", "none_s8", "(8 stacks from one call site)"),
                     ("full_walk_s8", "none_s8", "(8 stacks, stack_cache=0)")):
    print("  %-12s / %-7s  %7.3fx     %7.3fx   %s" % (a, b, med[a] / med[b], paired(a, b), target))
po = int(stats["bytes_per_object"])
print("page alloc+free (alloc_pages(GFP_KERNEL, order) + __free_pages), %d per run, same boot:" % (int(ops) // 10))
for o in (0, 2):
    for k in ("none", "count", "sampled", "full"):
        kk = "%s_p%d" % (k, o)
        v = runs[kk]
        print("  order %d %-8s median %8.1f ns/op   (min %.1f, max %.1f)" % (o, k, med[kk], min(v), max(v)))
    for a, b, target in (("count", "none", ""), ("sampled", "count", "(target <= 1.10x)"),
                         ("sampled", "none", ""), ("full", "none", "")):
        a2, b2 = "%s_p%d" % (a, o), "%s_p%d" % (b, o)
        print("  order %d %-8s / %-6s  %7.3fx     %7.3fx   %s" % (
            o, a, b, med[a2] / med[b2], paired(a2, b2), target))
print("memory: %d bytes per tracked object (pool entry + hash bucket share; target <= 48)" % po)
print("        %s bytes per distinct stack; pool %s bytes for %s objects and %s stacks = %.1f bytes per object all-in"
      % (stats["bytes_per_stack"], stats["pool_bytes"], stats["max_objects"], stats["max_stacks"],
         int(stats["pool_bytes"]) / int(stats["max_objects"])))
PY
