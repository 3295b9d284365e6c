# Helpers for the end-to-end guest hooks of tests/e2e (busybox sh), added to
# the initramfs as /lib/e2e-guest.sh: source it after /lib/mlt-guest.sh.

# now: unix seconds and uptime seconds (the guest clock is the host's, QEMU's RTC).
now() { echo "$(date +%s) $(cut -d' ' -f1 /proc/uptime)"; }

# need_share: the 9p share is mounted at /host (else warn, false).
need_share() {
	grep -q ' /host ' /proc/mounts && return 0
	echo "@@GUEST-WARN no 9p share at /host"
	return 1
}

# trace_calls FUNC: count FUNC's calls with the function tracer (only FUNC
# traced) until trace_count, so the test knows a churn really ran.
trace_calls() {
	t=/sys/kernel/debug/tracing
	traced=$1
	if [ -w "$t"/set_ftrace_filter ] && echo "$traced" > "$t"/set_ftrace_filter &&
		echo function > "$t"/current_tracer; then
		tracing=1
	else
		tracing=0
	fi
}

# trace_count NOTE: stop tracing, note the calls counted under NOTE.
trace_count() {
	[ "$tracing" = 1 ] || return 0
	echo 0 > "$t"/tracing_on
	note "$1" "$(grep -c ": $traced" "$t"/trace)"
	echo nop > "$t"/current_tracer
}

# collect NAME COUNTER DEVICE FIRMWARE INTERVAL COUNT: run deploy/collector.sh
# into /host/NAME, noting NAME_start/NAME_end ("unix uptime counter", the
# counter's file read with guest times: the ground truth) and NAME_rc.
collect() {
	note "$1_start" "$(now) $(cat "$2")"
	crc=0
	/bin/collector.sh -d "$3" -f "$4" -l source=qemu-e2e "/host/$1" "$5" "$6" || crc=$?
	note "$1_end" "$(now) $(cat "$2")"
	note "$1_rc" "$crc"
	return "$crc"
}
