# SPDX-License-Identifier: GPL-2.0
# Helpers for guest hook scripts (busybox sh). Source it: . /lib/mlt-guest.sh

# emit NAME FILE: print FILE base64-encoded between @@BEGIN/@@END markers,
# so the exact bytes survive the serial console and interleaved kernel lines.
emit() {
	echo "@@BEGIN $1"
	base64 "$2"
	echo "@@END $1"
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
