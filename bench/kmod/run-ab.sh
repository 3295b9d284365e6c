#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Two builds of mlt.ko side by side in one QEMU (TCG) boot of the Debian 6.1
# x86_64 kernel: this tree's ("new") and a git revision's ("base", default
# main). Each repetition measures kmalloc(64)+kfree with no probe, with the
# counting-only probe (the floor of any tracepoint tracker), with base's mlt
# in sampled mode and with new's, the two in alternating order, each as an
# untimed run then K timed runs (as run-bench.sh, statistics in
# benchstat.py); before the
# loop, what loading each in sampled mode costs: the pages of its vmalloc
# areas in /proc/vmallocinfo (the kernel's own count), at the default cap
# and at max_memory_kb=4096, default sample_bytes.
#
#   bench/kmod/run-ab.sh [REV] [REPS] [OPS] [K]  (defaults main, 31, 50000, 5)
#   ICOUNT=0 bench/kmod/run-ab.sh ...   QEMU -icount shift=0,sleep=off: guest
#                                       time is the instruction count (1 ns
#                                       each), so the host's load does not
#                                       enter; memory costs are not modelled
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KMOD=$(cd "$HERE/../../kmod" && pwd)
REV=${1:-main}
REPS=${2:-31}
OPS=${3:-50000}
K=${4:-5}
KERNEL=${KERNEL:-$(ls -d /boot/vmlinuz-6.1.0-*-amd64 | sort -V | tail -n1)}
REL=${KERNEL#/boot/vmlinuz-}
KDIR=${KDIR:-/usr/src/linux-headers-$REL}
BUILD=$KMOD/build/bench-$REL
LOG=$KMOD/build/logs/bench-ab-$(echo "$REV" | tr -c 'A-Za-z0-9.\n' _)${ICOUNT:+-icount}.console.log
BASE=$(mktemp -d)
trap 'rm -rf "$BASE"' EXIT
mkdir -p "$KMOD/build/logs"

git -C "$KMOD/.." archive "$REV" kmod bench/kmod | tar -x -C "$BASE"
make -s -C "$BASE/kmod" KDIR="$KDIR" BUILD="$BASE/build" >/dev/null 2>&1
make -s -C "$KMOD" KDIR="$KDIR" BUILD="$BUILD" >/dev/null 2>&1
echo "base: $REV ($(git -C "$KMOD/.." rev-parse --short "$REV")), new: this tree ($(git -C "$KMOD/.." rev-parse --short HEAD)$(git -C "$KMOD/.." diff --quiet HEAD -- kmod || echo +changes))"
"$KMOD/tests/run-qemu.sh" --kernel "$KERNEL" \
	--module "$BUILD/mlt/mlt.ko" --module "$BUILD/bench/mlt_bench.ko" \
	--extra-file "$BASE/build/mlt/mlt.ko:/modules/base/mlt.ko" \
	--extra-file "$HERE/measure.sh:/lib/mlt-measure.sh" \
	--init-hook "$HERE/ab-guest.sh" --hook-args "$REPS $OPS $K" \
	--smp 1 ${ICOUNT:+--icount "$ICOUNT"} --log "$LOG" --timeout 900
echo "host load average: $(cut -d' ' -f1-3 /proc/loadavg)"

PYTHONPATH=$HERE python3 - "$LOG" "$REPS" "$OPS" "$K" <<'PY'
import statistics, sys
import benchstat as bs
log, reps, ops, k = sys.argv[1:]
runs, other = bs.load(log)
for ln in other:
    if ln.startswith("@@LOAD "):
        _, which, cap, pages, areas = ln.split()
        print("sampled load, %-4s cap %-7s: %8d bytes of vmalloc pages in %s areas (/proc/vmallocinfo)"
              % (which, cap, 4096 * int(pages), areas))
least, mid = bs.per_rep(runs, min), bs.per_rep(runs, statistics.median)
print("%s reps x %s kmalloc(64)+kfree in %s timed runs each (least of them), QEMU TCG, 1 vCPU, log %s"
      % (reps, ops, k, log))
for c in ("none", "count", "base", "new"):
    print("  %-6s %s" % (c, bs.describe(least, c)))
print("ratios:           %s" % bs.RATIO_HEAD)
for a, b in (("count", "none"), ("base", "count"), ("new", "count"), ("new", "base")):
    print("  %-5s / %-6s  %s" % (a, b, bs.ratio_line(least, mid, a, b)))
PY
