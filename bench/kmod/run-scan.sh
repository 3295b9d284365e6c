#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The longest interrupts-off section of a read of mlt's stacks report, as
# mlt measures it (stats scan_last_irqoff_ns), for a large pool, with the
# stripes summed whole (scan_chunk=0, as before issue 19) and in chunks of
# 256 and 64 buckets. One QEMU TCG boot of Debian's 6.1 x86_64 kernel with
# ONE vCPU: with two, single-threaded TCG switches vCPUs inside a section
# and the time measured is QEMU's, not the guest's.
#
#   bench/kmod/run-scan.sh [CAP_KB] [OBJECTS] [READS]   (65536 20000 7)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KMOD=$(cd "$HERE/../../kmod" && pwd)
CAP=${1:-65536}
OBJS=${2:-20000}
READS=${3:-7}
KERNEL=${KERNEL:-$(ls -d /boot/vmlinuz-6.1.0-*-amd64 | sort -V | tail -n1)}
REL=${KERNEL#/boot/vmlinuz-}
KDIR=${KDIR:-/usr/src/linux-headers-$REL}
BUILD=$KMOD/build/bench-$REL
LOG=$KMOD/build/logs/scan-x86_64.console.log
mkdir -p "$KMOD/build/logs"

make -s -C "$KMOD" KDIR="$KDIR" BUILD="$BUILD" >/dev/null 2>&1
"$KMOD/tests/run-qemu.sh" --arch x86_64 --kernel "$KERNEL" \
	--module "$BUILD/mlt/mlt.ko" --module "$BUILD/leaky/leaky.ko" \
	--init-hook "$HERE/scan-guest.sh" --hook-args "$CAP $OBJS $READS" \
	--smp 1 --icount "${ICOUNT_SHIFT:-0}" --log "$LOG" --timeout 600

python3 - "$LOG" "$CAP" "$OBJS" <<'PY'
import statistics, sys
log, cap, objs = sys.argv[1:]
runs, pool = {}, "?"
for ln in open(log, "rb").read().decode("latin-1").splitlines():
    if ln.startswith("@@SCAN "):
        _, chunk, _, ns, holds, pool = ln.split()
        runs.setdefault(int(chunk), []).append((int(ns), int(holds)))
print("pool of %s objects (max_memory_kb %s), %s leaked; longest interrupts-off section per read:" % (pool, cap, objs))
for chunk, v in sorted(runs.items()):
    ns = [x[0] for x in v]
    print("  scan_chunk %-4s %5d lock holds: median %8.1f us, min %8.1f us, max %8.1f us over %d reads"
          % (chunk or "0 (a stripe)", v[0][1], statistics.median(ns) / 1e3, min(ns) / 1e3, max(ns) / 1e3, len(ns)))
PY
