#!/bin/sh
# collector.sh - write a kmemfleet bundle on a device with no Python (POSIX sh / busybox).
#
# usage: collector.sh [-d DEVICE_ID] [-f FIRMWARE] [-m MODEL] [-l KEY=VALUE]...
#                     [-r ROOT] [-D DEBUGFS] OUTDIR INTERVAL COUNT
#
# Every INTERVAL seconds, COUNT times, copies the kernel's memory reports
# verbatim into OUTDIR/<unix_seconds>/ and writes OUTDIR/device.json once
# (the bundle format of docs: `kmemfleet import OUTDIR` sends it later).
# Options may also come from the environment: KMEMFLEET_DEVICE_ID,
# KMEMFLEET_FIRMWARE, KMEMFLEET_HARDWARE_MODEL, KMEMFLEET_ROOT (a tree holding
# proc/, sys/, etc/ instead of /), KMEMFLEET_DEBUGFS.
set -eu

device_id=${KMEMFLEET_DEVICE_ID:-}
firmware=${KMEMFLEET_FIRMWARE:-}
model=${KMEMFLEET_HARDWARE_MODEL:-}
root=${KMEMFLEET_ROOT:-}
debugfs=${KMEMFLEET_DEBUGFS:-}
labels=""

die() { echo "collector.sh: $*" >&2; exit 1; }
usage() { sed -n '4,5p' "$0" | sed 's/^# //' >&2; exit 2; }

# JSON string body: escape backslash and quote, drop control characters.
json_str() { printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g'; }

while getopts d:f:m:l:r:D:h opt; do
    case $opt in
        d) device_id=$OPTARG ;;
        f) firmware=$OPTARG ;;
        m) model=$OPTARG ;;
        l) case $OPTARG in
               *=*) k=${OPTARG%%=*}; v=${OPTARG#*=}
                    [ -n "$labels" ] && labels="$labels, "
                    labels="$labels\"$(json_str "$k")\": \"$(json_str "$v")\"" ;;
               *) die "label '$OPTARG' is not KEY=VALUE" ;;
           esac ;;
        r) root=$OPTARG ;;
        D) debugfs=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || usage
out=$1 interval=$2 count=$3
case $interval in ''|*[!0-9]*) die "INTERVAL must be whole seconds" ;; esac
case $count in ''|*[!0-9]*|0) die "COUNT must be a positive number" ;; esac
[ "$interval" -ge 1 ] || die "INTERVAL must be at least 1 (captures are named by second)"

root=${root%/}
proc=$root/proc
[ -n "$debugfs" ] || debugfs=$root/sys/kernel/debug

first_line() { [ -r "$1" ] && head -n 1 "$1" 2>/dev/null | tr -d '\000'; }

if [ -z "$device_id" ]; then
    device_id=$(first_line "$root/etc/machine-id" || true)
    [ -n "$device_id" ] || die "no device id: pass -d ID or provide $root/etc/machine-id"
fi
if [ -z "$firmware" ] && [ -r "$root/etc/os-release" ]; then
    firmware=$(sed -n 's/^VERSION_ID=//p' "$root/etc/os-release" | tr -d "\"'" | head -n 1)
fi
[ -n "$firmware" ] || firmware=unknown
release=$(first_line "$proc/sys/kernel/osrelease" || uname -r)
arch=$(uname -m)

[ -r "$proc/slabinfo" ] || die "$proc/slabinfo is not readable (mode 0400: run as root)"
mkdir -p "$out"
tmp_json="$out/.device.json.tmp"
{
    echo "{"
    echo "  \"device_id\": \"$(json_str "$device_id")\","
    echo "  \"firmware_version\": \"$(json_str "$firmware")\","
    echo "  \"kernel_release\": \"$(json_str "$release")\","
    echo "  \"arch\": \"$(json_str "$arch")\","
    echo "  \"hardware_model\": \"$(json_str "$model")\","
    echo "  \"labels\": {$labels}"
    echo "}"
} > "$tmp_json"
mv "$tmp_json" "$out/device.json"

# bundle file name : kernel file
capture() {
    now=$(date +%s)
    while [ -e "$out/$now" ]; do sleep 1; now=$(date +%s); done
    tmp="$out/.$now.tmp"
    rm -rf "$tmp"
    mkdir "$tmp"
    for pair in slabinfo:$proc/slabinfo meminfo:$proc/meminfo buddyinfo:$proc/buddyinfo \
                boot_id:$proc/sys/kernel/random/boot_id uptime:$proc/uptime \
                allocinfo:$proc/allocinfo vmallocinfo:$proc/vmallocinfo vmstat:$proc/vmstat \
                mem_leaks:$proc/mlt/mem_leaks \
                kmalloc:$proc/kmalloc mlt_stacks:$debugfs/mlt/stacks; do
        name=${pair%%:*} src=${pair#*:}
        # cat, not cp: proc files report size 0 and some cp versions copy nothing.
        [ -r "$src" ] && cat "$src" > "$tmp/$name" 2>/dev/null || rm -f "$tmp/$name"
    done
    [ -s "$tmp/slabinfo" ] || { rm -rf "$tmp"; die "could not read $proc/slabinfo"; }
    mv "$tmp" "$out/$now"
    echo "capture $i/$count: $out/$now" >&2
}

i=1
while :; do
    capture
    [ "$i" -ge "$count" ] && break
    i=$((i + 1))
    sleep "$interval"
done
echo "bundle $out: $count capture(s) of device $device_id"
