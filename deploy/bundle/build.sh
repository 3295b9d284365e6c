#!/bin/bash
# Build a self-contained kmemfleet agent bundle for one device architecture,
# on an x86_64 (or any) build host:
#
#   bash deploy/bundle/build.sh x86_64|aarch64|armv7l       (or: make bundle ARCH=...)
#
# Output, under build/bundle/ (git-ignored):
#   kmemfleet-agent-VERSION-ARCH.tar.gz      unpack into the firmware root filesystem
#   kmemfleet-collector-VERSION.tar.gz       the busybox shell collector alone
#                                            (devices without Python; any arch)
#   ARCH/rootfs/                             the same tree, unpacked
#
# The agent bundle is a relocatable folder, not a zipapp: a zipapp with native
# extensions (grpcio) must unpack itself into a writable cache on first run,
# which a read-only firmware root does not have. The folder carries the target's
# binary wheels of grpcio and protobuf, fetched with
# `pip --platform ... --only-binary=:all:` (nothing is compiled), and needs only
# a CPython of the chosen minor version on the device (no pip, no compiler).
#
# Environment:
#   PYTHON_VERSIONS  target CPython minor versions, space separated (default 3.11;
#                    e.g. "3.10 3.12" for Yocto kirkstone + scarthgap images).
#                    Each adds one lib/pythonX.Y folder (~25-45 MB unpacked).
#   MANYLINUX        glibc baseline of the native wheels (default 2_17: glibc >= 2.17;
#                    the legacy manylinux2014 tag, = 2_17, is always accepted too)
#   WHEELHOUSE       extra folder of wheels to prefer (e.g. a grpcio built by Yocto)
#   KDIR             kernel build tree of the target kernel: also build kmod/mlt.ko
#   CROSS_COMPILE    cross compiler prefix for KDIR (default per ARCH, Debian names)
#   BUNDLE_OUT       output folder (default build/bundle)
#   SOURCE_DATE_EPOCH  timestamps in the tarball (default: the last commit's)
set -euo pipefail

ARCH=${1:-${ARCH:-x86_64}}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
OUT=${BUNDLE_OUT:-$REPO/build/bundle}
PYTHON_VERSIONS=${PYTHON_VERSIONS:-3.11}
MANYLINUX=${MANYLINUX:-2_17}

die() { echo "bundle: $*" >&2; exit 1; }

case "$ARCH" in
x86_64)
	PLATFORMS="manylinux_${MANYLINUX}_x86_64 manylinux2014_x86_64"
	KARCH=x86_64; DEFAULT_CROSS=x86_64-linux-gnu- ;;
aarch64 | arm64)
	ARCH=aarch64
	PLATFORMS="manylinux_${MANYLINUX}_aarch64 manylinux2014_aarch64"
	KARCH=arm64; DEFAULT_CROSS=aarch64-linux-gnu- ;;
armv7l | armv7 | armhf)
	ARCH=armv7l
	# PyPI has no manylinux armv7l wheels of grpcio; it has linux_armv7l ones
	# (built for glibc armhf systems such as Raspberry Pi OS/Debian armhf).
	# protobuf has no armv7l binary wheel at all: its pure-Python wheel is used.
	PLATFORMS="linux_armv7l manylinux_${MANYLINUX}_armv7l"
	KARCH=arm; DEFAULT_CROSS=arm-linux-gnueabihf- ;;
*)
	die "unknown ARCH '$ARCH' (x86_64, aarch64 or armv7l)" ;;
esac

# The build host's Python runs pip; the project's virtualenv when there is one.
HOSTPY=${BUNDLE_HOST_PYTHON:-}
if [ -z "$HOSTPY" ]; then
	if [ -x "$REPO/.venv/bin/python" ]; then
		HOSTPY=$REPO/.venv/bin/python
	else
		HOSTPY=$(command -v python3) || die "python3 is needed on the build host"
	fi
fi
"$HOSTPY" -m pip --version >/dev/null 2>&1 || die "$HOSTPY has no pip"

VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/kmemfleet/__init__.py")
[ -n "$VERSION" ] || die "cannot read kmemfleet.__version__"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

WORK=$OUT/$ARCH
ROOT=$WORK/rootfs
HOME_DIR=opt/kmemfleet
rm -rf "$WORK"
mkdir -p "$WORK/wheels" "$ROOT/$HOME_DIR/bin" "$ROOT/$HOME_DIR/lib"

echo "bundle: kmemfleet $VERSION for $ARCH, CPython $PYTHON_VERSIONS ($PLATFORMS)"

# 1. kmemfleet itself as a pure wheel (no dependencies resolved on the host).
if "$HOSTPY" -c 'import setuptools, wheel' 2>/dev/null; then
	ISOLATION=--no-build-isolation
else
	ISOLATION=
fi
"$HOSTPY" -m pip wheel --quiet --no-deps $ISOLATION -w "$WORK/wheels" "$REPO" \
	|| die "cannot build the kmemfleet wheel"
WHEEL=$(ls "$WORK"/wheels/kmemfleet-*.whl)

# 2. Per target Python: the agent's dependency closure as target binary wheels.
PLATFORM_ARGS=()
for p in $PLATFORMS; do PLATFORM_ARGS+=(--platform "$p"); done
FIND_LINKS=()
if [ -n "${WHEELHOUSE:-}" ]; then FIND_LINKS=(--find-links "$WHEELHOUSE"); fi
for pyver in $PYTHON_VERSIONS; do
	lib=$ROOT/$HOME_DIR/lib/python$pyver
	"$HOSTPY" -m pip install --quiet --disable-pip-version-check --no-compile \
		--no-warn-script-location --target "$lib" \
		--only-binary=:all: "${PLATFORM_ARGS[@]}" --implementation cp \
		--python-version "$pyver" --abi "cp${pyver/./}" --abi abi3 --abi none \
		"${FIND_LINKS[@]}" "$WHEEL" \
		|| die "no complete set of $ARCH wheels for CPython $pyver (see above)"
	# The device runs the agent only: no server code, no host launcher scripts.
	rm -rf "${lib:?}/bin" "$lib/kmemfleet/server" "$lib/kmemfleet/cli/server.py" \
		"$lib/kmemfleet/cli/demo.py"
	find "$lib" -name '__pycache__' -type d -prune -exec rm -rf {} +
	# Byte-compile when the build host has that CPython (unchecked-hash .pyc:
	# valid on a read-only root whatever the file times; much faster start).
	if "$HOSTPY" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$pyver'.split('.'))))"; then
		"$HOSTPY" -m compileall -q -j0 --invalidation-mode unchecked-hash "$lib" >/dev/null
	fi
done

# 3. Launcher, service files, shell collector, optional kernel module.
install -m 0755 "$REPO/deploy/bundle/kmemfleet.sh" "$ROOT/$HOME_DIR/bin/kmemfleet"
mkdir -p "$ROOT/usr/bin" "$ROOT/etc/init.d" "$ROOT/etc/default" "$ROOT/usr/lib/systemd/system"
ln -s "../../$HOME_DIR/bin/kmemfleet" "$ROOT/usr/bin/kmemfleet"
install -m 0755 "$REPO/deploy/bundle/S95kmemfleet-agent" "$ROOT/etc/init.d/S95kmemfleet-agent"
install -m 0644 "$REPO/deploy/bundle/kmemfleet-agent.default" "$ROOT/etc/default/kmemfleet-agent"
install -m 0644 "$REPO/deploy/systemd/kmemfleet-agent.service" \
	"$ROOT/usr/lib/systemd/system/kmemfleet-agent.service"

COLLECTOR=no
if [ -f "$REPO/deploy/collector.sh" ]; then
	COLLECTOR=yes
	install -D -m 0755 "$REPO/deploy/collector.sh" "$ROOT/$HOME_DIR/collector/collector.sh"
else
	echo "bundle: deploy/collector.sh not found; bundle has no shell collector" >&2
fi

KMOD=no
if [ -n "${KDIR:-}" ]; then
	[ -d "$KDIR" ] || die "KDIR=$KDIR is not a folder"
	CROSS=${CROSS_COMPILE-$DEFAULT_CROSS}
	if [ "$ARCH" = "$(uname -m)" ] && [ -z "${CROSS_COMPILE:-}" ]; then CROSS=; fi
	# Build in a copy: never disturb the kernel engineer's kmod/ tree.
	rm -rf "$WORK/kmod"
	cp -r "$REPO/kmod" "$WORK/kmod"
	rm -rf "$WORK/kmod/build"
	make -C "$WORK/kmod" KDIR="$KDIR" ARCH="$KARCH" CROSS_COMPILE="$CROSS" \
		|| die "kmod build failed for KDIR=$KDIR"
	# The release the module's vermagic carries (= `uname -r` on the target).
	KREL=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
		"$KDIR/include/generated/utsrelease.h" 2>/dev/null)
	[ -n "$KREL" ] || KREL=$(cat "$KDIR/include/config/kernel.release" 2>/dev/null || echo unknown)
	KO=$(find "$WORK/kmod" -name mlt.ko -type f | head -n1)
	[ -n "$KO" ] || die "kmod build made no mlt.ko"
	install -D -m 0644 "$KO" "$ROOT/lib/modules/$KREL/extra/mlt.ko"
	install -D -m 0644 /dev/stdin "$ROOT/etc/modules-load.d/mlt.conf" <<<"mlt"
	KMOD=$KREL
fi

# 4. A manifest the device (and support) can read.
{
	echo "{"
	echo "  \"name\": \"kmemfleet-agent\","
	echo "  \"version\": \"$VERSION\","
	echo "  \"arch\": \"$ARCH\","
	echo "  \"python_versions\": \"$PYTHON_VERSIONS\","
	echo "  \"wheel_platforms\": \"$PLATFORMS\","
	echo "  \"packages\": ["
	first=1
	for d in "$ROOT/$HOME_DIR"/lib/python*/*.dist-info; do
		n=$(basename "$d" .dist-info)
		py=$(basename "$(dirname "$d")")
		[ $first = 1 ] || echo ","
		printf '    "%s/%s"' "$py" "$n"
		first=0
	done
	echo ""
	echo "  ],"
	echo "  \"shell_collector\": \"$COLLECTOR\","
	echo "  \"kernel_module_for\": \"$KMOD\""
	echo "}"
} >"$ROOT/$HOME_DIR/BUNDLE.json"

# 5. Tarballs: root-owned, sorted, fixed times (reproducible for one input).
TAR_OPTS=(--owner=0 --group=0 --numeric-owner --sort=name --mtime="@$SOURCE_DATE_EPOCH")
TARBALL=$OUT/kmemfleet-agent-$VERSION-$ARCH.tar.gz
tar "${TAR_OPTS[@]}" -C "$ROOT" -cf - . | gzip -9n >"$TARBALL"

if [ "$COLLECTOR" = yes ]; then
	CROOT=$WORK/collector-root
	rm -rf "$CROOT"
	install -D -m 0755 "$REPO/deploy/collector.sh" "$CROOT/$HOME_DIR/collector/collector.sh"
	install -D -m 0755 "$REPO/deploy/bundle/S95kmemfleet-collector" \
		"$CROOT/etc/init.d/S95kmemfleet-collector"
	install -D -m 0644 "$REPO/deploy/bundle/kmemfleet-collector.default" \
		"$CROOT/etc/default/kmemfleet-collector"
	tar "${TAR_OPTS[@]}" -C "$CROOT" -cf - . | gzip -9n >"$OUT/kmemfleet-collector-$VERSION.tar.gz"
fi

unpacked=$(du -sk "$ROOT" | cut -f1)
packed=$(( $(stat -c %s "$TARBALL") / 1024 ))
echo "bundle: $TARBALL"
echo "bundle: $ARCH size: ${packed} KiB packed, ${unpacked} KiB unpacked"
