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
