# SPDX-License-Identifier: GPL-2.0
# Guest side of the kmod benchmarks (busybox sh), shipped as
# /lib/mlt-measure.sh. Source it after setting OPS, K and B (mlt_bench's
# parameter directory); $r is the repetition.
#
# measure CONFIG [N]: N (default OPS) pairs in K timed runs of N / K, after
# one untimed run of N / K. The untimed run takes what a configuration
# change leaves to the first run: QEMU retranslating the code that the
# change patched (tracepoint static keys, a freshly loaded module) and
# the module's first slow paths. Prints "@@BENCH config rep ps" per timed
# run; the host takes the least of a repetition's K (host preemption only
# ever adds time) or their median.
measure() {
	n=$(( ${2:-$OPS} / K ))
	echo "$n" > $B/run || return 1
	i=0
	while [ $i -lt "$K" ]; do
		i=$((i + 1))
		echo "$n" > $B/run || return 1
		echo "@@BENCH $1 $r $(cat $B/result_ps)"
	done
}
