#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the kmod QEMU tests need on a Debian 12 (bookworm)
# x86_64 machine, as root. Idempotent and non-interactive.
#
#   bash .ci/install-kmod.sh
#
# Puts the arm64 kernel headers, arm64 kernel image, the x86_64 6.1
# PREEMPT_RT and 5.10 (bullseye) images and headers, and checkpatch.pl into
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
      busybox-static e2fsprogs gcc gcc-aarch64-linux-gnu make cpio kmod xz-utils perl
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
# modules.dep for the extracted arm64 modules (run-qemu.sh --disk and --share
# use it).
depmod -b "$CACHE/arm64/rootfs" "$ABI-arm64"
ln -sfn "$(ls "$CACHE"/arm64/rootfs/boot/vmlinuz-"$ABI"-arm64)" "$CACHE/arm64/vmlinuz"

# extract DIR PKG...: download Debian packages (APT_OPTS selects the
# archive) and extract them under DIR/rootfs, never installing them.
extract() {
	local dir=$1 deb
	shift
	rm -rf "$dir" dl
	mkdir -p "$dir" dl
	# shellcheck disable=SC2086
	(cd dl && apt-get ${APT_OPTS:-} download -q "$@")
	for deb in dl/*.deb; do
		dpkg-deb -x "$deb" "$dir/rootfs"
	done
	rm -rf dl
}

# relocate DIR ARCH_HDR COMMON_HDR KBUILD: make extracted headers usable
# where they are: the arch headers' Makefile includes the common ones by
# their /usr/src path, and both link scripts/ and tools/ to a kbuild tree.
relocate() {
	local src=$1/rootfs/usr/src h d
	sed -i "s|^include /usr/src/$3/Makefile|include $src/$3/Makefile|" "$src/$2/Makefile"
	for h in "$src/$2" "$src/$3"; do
		for d in scripts tools; do
			rm -rf "${h:?}/$d"
			ln -s "$4/$d" "$h/$d"
		done
	done
}

# x86_64 6.1 PREEMPT_RT: image and headers of the same ABI, extracted.
# The headers use the host's linux-kbuild-6.1.
if [ ! -f "x86_64-6.1-rt/$ABI.done" ]; then
	extract x86_64-6.1-rt "linux-image-$ABI-rt-amd64-unsigned" \
		"linux-headers-$ABI-rt-amd64" "linux-headers-$ABI-common-rt"
	relocate "$CACHE/x86_64-6.1-rt" "linux-headers-$ABI-rt-amd64" \
		"linux-headers-$ABI-common-rt" /usr/lib/linux-kbuild-6.1
	touch "x86_64-6.1-rt/$ABI.done"
fi
ln -sfn "$CACHE/x86_64-6.1-rt/rootfs/usr/src/linux-headers-$ABI-rt-amd64" \
	"$CACHE/x86_64-6.1-rt/headers"
ln -sfn "$(ls "$CACHE"/x86_64-6.1-rt/rootfs/boot/vmlinuz-"$ABI"-rt-amd64)" \
	"$CACHE/x86_64-6.1-rt/vmlinuz"
# modules.dep (run-qemu.sh --disk and --share look modules up with it).
depmod -b "$CACHE/x86_64-6.1-rt/rootfs" "$ABI-rt-amd64"

# x86_64 5.10 (Debian 11, bullseye): the newest ABI with an image and
# headers, from a private apt configuration (the host's sources are not
# touched), extracted with its own linux-kbuild-5.10. Its headers name
# gcc-10; the build uses the host's gcc (CC=gcc, see kmod/tests/targets.sh).
BULL=$CACHE/apt-bullseye
mkdir -p "$BULL/lists/partial" "$BULL/cache/archives/partial"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
{
	echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian bullseye main"
	echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian-security bullseye-security main"
} > "$BULL/sources.list"
APT_OPTS="-o Dir::Etc::SourceList=$BULL/sources.list -o Dir::Etc::SourceParts=/dev/null
	-o Dir::State::Lists=$BULL/lists -o Dir::Cache=$BULL/cache
	-o Dir::State::status=/dev/null -o APT::Architectures=amd64"
# shellcheck disable=SC2086
apt-get $APT_OPTS update -q
# shellcheck disable=SC2086
ABI510=$(apt-cache $APT_OPTS search --names-only '^linux-headers-5\.10\.0-[0-9]+-amd64$' |
	sed -n 's/^linux-headers-\(5\.10\.0-[0-9]*\)-amd64 .*/\1/p' | sort -V |
	while read -r v; do
		if apt-cache $APT_OPTS show "linux-image-$v-amd64-unsigned" >/dev/null 2>&1; then
			echo "$v"
		fi
	done | tail -n1)
if [ -z "$ABI510" ]; then
	echo "install-kmod.sh: no Debian 5.10 kernel found; 5.10 tests will skip" >&2
elif [ ! -f "x86_64-5.10/$ABI510.done" ]; then
	extract x86_64-5.10 "linux-image-$ABI510-amd64-unsigned" \
		"linux-headers-$ABI510-amd64" "linux-headers-$ABI510-common" \
		linux-kbuild-5.10
	relocate "$CACHE/x86_64-5.10" "linux-headers-$ABI510-amd64" \
		"linux-headers-$ABI510-common" \
		"$CACHE/x86_64-5.10/rootfs/usr/lib/linux-kbuild-5.10"
	touch "x86_64-5.10/$ABI510.done"
fi
unset APT_OPTS
if [ -n "$ABI510" ]; then
	ln -sfn "$CACHE/x86_64-5.10/rootfs/usr/src/linux-headers-$ABI510-amd64" \
		"$CACHE/x86_64-5.10/headers"
	ln -sfn "$(ls "$CACHE"/x86_64-5.10/rootfs/boot/vmlinuz-"$ABI510"-amd64)" \
		"$CACHE/x86_64-5.10/vmlinuz"
	depmod -b "$CACHE/x86_64-5.10/rootfs" "$ABI510-amd64"
fi

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
echo "  amd64 6.1 RT:      $CACHE/x86_64-6.1-rt/vmlinuz, headers"
echo "  amd64 5.10:        ${ABI510:-none} in $CACHE/x86_64-5.10"
echo "  checkpatch:        $CACHE/checkpatch/scripts/checkpatch.pl"
