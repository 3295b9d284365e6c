#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the kmod QEMU tests need on a Debian 12 (bookworm)
# x86_64 machine, as root. Idempotent and non-interactive.
#
#   bash .ci/install-kmod.sh
#
# Puts the arm64 kernel headers, arm64 kernel image and checkpatch.pl into
# $KMOD_CACHE (default /var/cache/kmemfleet-kmod), where kmod/Makefile,
# kmod/tests/run-qemu.sh and tests/kmod/ look for them.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
CACHE=${KMOD_CACHE:-/var/cache/kmemfleet-kmod}
APT="apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

if [ "$(id -u)" != 0 ]; then
	echo "install-kmod.sh: must run as root" >&2
	exit 1
fi

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	dpkg --add-architecture arm64
fi
apt-get update -q

# Newest 6.12 for which both an unsigned image and headers exist.
V612=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' |
	sed -n 's/^linux-image-\(6\.12\.[0-9]*+deb12\)-amd64-unsigned .*/\1/p' |
	sort -V | while read -r v; do
		if apt-cache show "linux-headers-$v-amd64" >/dev/null 2>&1; then
			echo "$v"
		fi
	done | tail -n1)

PKGS="linux-image-amd64 linux-headers-amd64 qemu-system-x86 qemu-system-arm
      busybox-static gcc gcc-aarch64-linux-gnu make cpio kmod xz-utils perl
      python3 python3-pytest"
if [ -n "$V612" ]; then
	PKGS="$PKGS linux-image-$V612-amd64-unsigned linux-headers-$V612-amd64"
else
	echo "install-kmod.sh: no Debian 6.12 kernel found; 6.12 tests will skip" >&2
fi
# shellcheck disable=SC2086
$APT install --no-install-recommends $PKGS

mkdir -p "$CACHE"
cd "$CACHE"

# arm64: headers and image for the same ABI as the amd64 6.1 meta-package.
# They are downloaded and extracted, never installed (installing arm64
# headers would replace the host gcc).
ABI=$(apt-cache depends linux-headers-amd64 |
	sed -n 's/.*Depends: linux-headers-\(6\.1\.0-[0-9]*\)-amd64$/\1/p' | head -n1)
if [ -z "$ABI" ]; then
	echo "install-kmod.sh: cannot find the 6.1 ABI" >&2
	exit 1
fi
if [ ! -f "arm64/$ABI.done" ] || [ ! -d arm64/rootfs ]; then
	rm -rf arm64 dl
	mkdir -p arm64 dl
	# linux-headers-*-common is arch "all"; busybox-static:arm64 is the
	# guest's /bin/busybox.
	(cd dl && apt-get download -q "linux-headers-$ABI-arm64:arm64" \
		"linux-headers-$ABI-common" "linux-image-$ABI-arm64:arm64" \
		"busybox-static:arm64")
	for deb in dl/*.deb; do
		dpkg-deb -x "$deb" arm64/rootfs
	done
	rm -rf dl
	touch "arm64/$ABI.done"
fi
HDR="$CACHE/arm64/rootfs/usr/src/linux-headers-$ABI-arm64"
# The arm64 header package's scripts/ and tools/ link to the (arm64)
# linux-kbuild package; point them at the host's x86_64 kbuild instead.
KBUILD=/usr/lib/linux-kbuild-6.1
for d in scripts tools; do
	if [ -e "$KBUILD/$d" ]; then
		rm -rf "${HDR:?}/$d"
		ln -s "$KBUILD/$d" "$HDR/$d"
	fi
done
ln -sfn "$HDR" "$CACHE/arm64/headers"
# modules.dep for the extracted arm64 modules (run-qemu.sh --share uses it).
depmod -b "$CACHE/arm64/rootfs" "$ABI-arm64"
ln -sfn "$(ls "$CACHE"/arm64/rootfs/boot/vmlinuz-"$ABI"-arm64)" "$CACHE/arm64/vmlinuz"

# checkpatch.pl is not in the header packages: take it (and the data files
# it reads) out of Debian's linux-source-6.1 tarball.
if [ ! -x "$CACHE/checkpatch/scripts/checkpatch.pl" ]; then
	rm -rf dl-src && mkdir -p dl-src
	(cd dl-src && apt-get download -q linux-source-6.1)
	dpkg-deb -x dl-src/linux-source-6.1_*.deb dl-src/x
	TARBALL=$(ls dl-src/x/usr/src/linux-source-6.1.tar.xz)
	mkdir -p checkpatch
	tar -xJf "$TARBALL" -C checkpatch --strip-components=1 \
		--wildcards '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	rm -rf dl-src
fi

echo "install-kmod.sh: done"
echo "  amd64 6.1 headers: $(ls -d /usr/src/linux-headers-6.1.*-amd64 | tail -n1)"
echo "  amd64 6.12:        ${V612:-none}"
echo "  arm64 headers:     $CACHE/arm64/headers"
echo "  arm64 image:       $CACHE/arm64/vmlinuz"
echo "  arm64 busybox:     $CACHE/arm64/rootfs/bin/busybox"
echo "  checkpatch:        $CACHE/checkpatch/scripts/checkpatch.pl"
