#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kmalloc(64)+kfree cost under mlt.ko, in one QEMU (TCG) boot of the Debian
# 6.1 x86_64 kernel: no probe, the counting-only probe (floor of any
# tracepoint tracker), mlt sampled (default sample_bytes), mlt full; plus the
# memory per tracked object from mlt's stats. Medians over REPS repetitions.
#
#   bench/kmod/run-bench.sh [REPS] [OPS]      (defaults 9 and 200000)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KMOD=$(cd "$HERE/../../kmod" && pwd)
REPS=${1:-9}
OPS=${2:-200000}
KERNEL=${KERNEL:-$(ls -d /boot/vmlinuz-6.1.0-*-amd64 | sort -V | tail -n1)}
REL=${KERNEL#/boot/vmlinuz-}
KDIR=${KDIR:-/usr/src/linux-headers-$REL}
BUILD=$KMOD/build/bench-$REL
LOG=$KMOD/build/logs/bench.console.log
mkdir -p "$KMOD/build/logs"

make -s -C "$KMOD" KDIR="$KDIR" BUILD="$BUILD" >/dev/null
"$KMOD/tests/run-qemu.sh" --kernel "$KERNEL" \
	--module "$BUILD/mlt/mlt.ko" --module "$BUILD/bench/mlt_bench.ko" \
	--init-hook "$HERE/bench-guest.sh" --hook-args "$REPS $OPS" \
	--log "$LOG" --timeout 900

python3 - "$LOG" "$KERNEL" "$REPS" "$OPS" <<'PY'
import base64, statistics, sys
log, kernel, reps, ops = sys.argv[1:]
runs, stats, cur, buf = {}, {}, None, []
for ln in open(log, "rb").read().decode("latin-1").splitlines():
    ln = ln.rstrip("\r")
    if ln.startswith("@@BENCH "):
        _, cfg, _, ps = ln.split()
        runs.setdefault(cfg, []).append(int(ps) / 1000.0)
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
for k in ("none", "count", "sampled", "full"):
    v = runs[k]
    print("  %-8s median %8.1f ns/op   (min %.1f, max %.1f)" % (k, med[k], min(v), max(v)))
print("ratios:")
print("  count   / none  = %.2fx" % (med["count"] / med["none"]))
print("  sampled / count = %.3fx   (target <= 1.10x)" % (med["sampled"] / med["count"]))
print("  sampled / none  = %.2fx" % (med["sampled"] / med["none"]))
print("  full    / none  = %.2fx   (target <= 8x)" % (med["full"] / med["none"]))
po = int(stats["bytes_per_object"])
print("memory: %d bytes per tracked object (pool entry + hash bucket share; target <= 48)" % po)
print("        %s bytes per distinct stack; pool %s bytes for %s objects and %s stacks = %.1f bytes per object all-in"
      % (stats["bytes_per_stack"], stats["pool_bytes"], stats["max_objects"], stats["max_stacks"],
         int(stats["pool_bytes"]) / int(stats["max_objects"])))
PY
