#!/bin/sh
# kmemfleet launcher of the agent bundle (POSIX sh: busybox ash, dash, bash).
#
# Runs the device's own CPython on the packages this bundle carries in
# lib/pythonX.Y, isolated from anything else installed on the device
# (-I: no PYTHON* variables, no user site; -S: no site-packages).
#
#   KMEMFLEET_PYTHON      interpreter to use (default: the first python3* found)
#   KMEMFLEET_TOKEN_FILE  file holding the bearer token (read into KMEMFLEET_TOKEN);
#                         under systemd the credential "token" is used the same way
set -eu

self=$(readlink -f "$0" 2>/dev/null || echo "$0")
home=$(cd "$(dirname "$self")/.." && pwd -P)

py=${KMEMFLEET_PYTHON:-}
if [ -z "$py" ]; then
	for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
		if command -v "$candidate" >/dev/null 2>&1; then
			py=$(command -v "$candidate")
			break
		fi
	done
fi
if [ -z "$py" ]; then
	echo "kmemfleet: no python3 on this device; use $home/collector/collector.sh" \
		"(the shell collector) instead" >&2
	exit 69
fi

ver=$("$py" -I -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')
lib=$home/lib/python$ver
if [ ! -d "$lib" ]; then
	have=$(cd "$home/lib" && echo python*)
	echo "kmemfleet: $py is Python $ver but this bundle carries packages for: $have" >&2
	echo "kmemfleet: rebuild it with PYTHON_VERSIONS=$ver make bundle ARCH=$(uname -m)" >&2
	exit 69
fi

# The bearer token: a systemd credential first, then KMEMFLEET_TOKEN_FILE.
if [ -z "${KMEMFLEET_TOKEN:-}" ]; then
	tokfile=${KMEMFLEET_TOKEN_FILE:-}
	if [ -n "${CREDENTIALS_DIRECTORY:-}" ] && [ -r "$CREDENTIALS_DIRECTORY/token" ]; then
		tokfile=$CREDENTIALS_DIRECTORY/token
	fi
	if [ -n "$tokfile" ] && [ -r "$tokfile" ]; then
		KMEMFLEET_TOKEN=$(cat "$tokfile")
		export KMEMFLEET_TOKEN
	fi
fi

exec "$py" -I -S -c '
import runpy, sys
sys.path.insert(0, sys.argv.pop(1))
sys.argv[0] = "kmemfleet"
runpy.run_module("kmemfleet.cli.main", run_name="__main__", alter_sys=True)
' "$lib" "$@"
