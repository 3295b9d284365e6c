# SPDX-License-Identifier: GPL-2.0
# Helpers for guest hook scripts (busybox sh). Source it: . /lib/mlt-guest.sh

# emit NAME FILE: print FILE base64-encoded between @@BEGIN/@@END markers,
# so the exact bytes survive the serial console and interleaved kernel lines.
emit() {
	echo "@@BEGIN $1"
	base64 "$2"
	echo "@@END $1"
}

# emit_sized NAME: mlt's stats (NAME_stats) and its areas in
# /proc/vmallocinfo (NAME_vmalloc) as of one table size: a work item may
# add a pool or stack chunk between the two reads (sample_bytes 1 samples
# every allocation of the guest), so read again until the chunk counts
# before and after the vmallocinfo read agree.
emit_sized() {
	d=/sys/kernel/debug/mlt
	n=0
	while :; do
		cat $d/stats > /tmp/sized_stats.txt
		grep '\[mlt\]' /proc/vmallocinfo > /tmp/sized_vmalloc.txt
		grep -E '^(obj|stack)_chunks ' /tmp/sized_stats.txt > /tmp/sized_a.txt
		grep -E '^(obj|stack)_chunks ' $d/stats > /tmp/sized_b.txt
		n=$((n + 1))
		cmp -s /tmp/sized_a.txt /tmp/sized_b.txt && break
		[ $n -lt 10 ] || break
		sleep 0.2
	done
	emit "$1_stats" /tmp/sized_stats.txt
	emit "$1_vmalloc" /tmp/sized_vmalloc.txt
}

# note KEY VALUE...: one-line fact for the host checker.
note() {
	echo "@@NOTE $*"
}

# try CMD...: run CMD, note its exit status under the given name.
try() {
	name=$1
	shift
	"$@"
	note "rc_$name" $?
}

# storm_reading MS: leaky's alloc/free storm on every CPU for MS ms (whole
# seconds) while mlt's three reports are read in a loop; prints the number
# of complete reads.
storm_reading() {
	echo "storm $1" > /sys/module/leaky/parameters/run || return 1
	reads=0
	end=$(( $(cut -d. -f1 /proc/uptime) + $1 / 1000 ))
	while [ "$(cut -d. -f1 /proc/uptime)" -le $end ]; do
		cat /sys/kernel/debug/mlt/stacks > /dev/null &&
			cat /sys/kernel/debug/mlt/mem_leaks > /dev/null &&
			cat /sys/kernel/debug/mlt/stats > /dev/null &&
			reads=$((reads + 1))
	done
	echo storm_wait > /sys/module/leaky/parameters/run
	echo $reads
}
