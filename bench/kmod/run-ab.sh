#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Two builds of mlt.ko side by side in one QEMU (TCG) boot of the Debian 6.1
# x86_64 kernel: this tree's ("new") and a git revision's ("base", default
# main). Each repetition measures kmalloc(64)+kfree with no probe, with the
# counting-only probe (the floor of any tracepoint tracker), with base's mlt
# in sampled mode and with new's, the two in alternating order; before the
# loop, what loading each in sampled mode costs: the pages of its vmalloc
# areas in /proc/vmallocinfo (the kernel's own count), at the default cap
# and at max_memory_kb=4096, default sample_bytes.
#
#   bench/kmod/run-ab.sh [REV] [REPS] [OPS]     (defaults main, 31, 50000)
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
	--init-hook "$HERE/ab-guest.sh" --hook-args "$REPS $OPS" \
	--smp 1 ${ICOUNT:+--icount "$ICOUNT"} --log "$LOG" --timeout 900
echo "host load average: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$LOG" "$REPS" "$OPS" <<'PY'
import statistics, sys
log, reps, ops = sys.argv[1:]
runs, byrep = {}, {}
for ln in open(log, "rb").read().decode("latin-1").splitlines():
    ln = ln.rstrip("\r")
    if ln.startswith("@@BENCH "):
        _, cfg, rep, ps = ln.split()
        runs.setdefault(cfg, []).append(int(ps) / 1000.0)
        byrep.setdefault(rep, {})[cfg] = int(ps) / 1000.0
    elif ln.startswith("@@LOAD "):
        _, which, cap, pages, areas = ln.split()
        print("sampled load, %-4s cap %-7s: %8d bytes of vmalloc pages in %s areas (/proc/vmallocinfo)"
              % (which, cap, 4096 * int(pages), areas))
print("%s reps x %s kmalloc(64)+kfree, QEMU TCG, 1 vCPU, log %s" % (reps, ops, log))
med = {k: statistics.median(v) for k, v in runs.items()}
for k in ("none", "count", "base", "new"):
    v = runs[k]
    print("  %-6s median %8.1f ns/op   (min %.1f, max %.1f)" % (k, med[k], min(v), max(v)))
def paired(a, b):
    return statistics.median(r[a] / r[b] for r in byrep.values() if a in r and b in r)
print("ratios:            of medians   median of paired")
for a, b in (("count", "none"), ("base", "count"), ("new", "count"), ("new", "base")):
    print("  %-5s / %-6s  %7.3fx     %7.3fx" % (a, b, med[a] / med[b], paired(a, b)))
PY
