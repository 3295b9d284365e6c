#!/bin/bash
# Install everything the deploy tests (tests/deploy/) need on a Debian 12
# (bookworm) x86_64 machine, as root. Idempotent and non-interactive:
# qemu-user-static, debootstrap, shellcheck, yamllint, docker-compose (v1, only
# for `config` validation) and pyyaml + kubernetes-validate in .venv.
#
#   bash .ci/install-deploy.sh
#
# Besides the packages, it makes one Debian bookworm root filesystem per
# emulated device architecture (arm64, armhf) under $DEPLOY_CACHE (default
# /var/cache/kmemfleet-deploy/rootfs-ARCH): `debootstrap --foreign` downloads
# and unpacks the base system plus python3, and the remaining packages it
# downloaded are unpacked with dpkg-deb (no maintainer scripts run: that second
# stage would need binfmt_misc, which a container may not offer). The tests run
# that root's own python3 under qemu-user-static (`qemu-aarch64-static -L ROOT`).
# About 40 s and ~230 MB per architecture, once.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
CACHE=${DEPLOY_CACHE:-/var/cache/kmemfleet-deploy}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
APT="apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

if [ "$(id -u)" != 0 ]; then
	echo "install-deploy.sh: must run as root" >&2
	exit 1
fi

need_pkgs=
for p in qemu-user-static debootstrap shellcheck yamllint systemd python3 python3-venv \
	ca-certificates gzip tar docker-compose; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		need_pkgs="$need_pkgs $p"
done
if [ -n "$need_pkgs" ]; then
	apt-get update -q
	# shellcheck disable=SC2086
	$APT install --no-install-recommends $need_pkgs
fi

mkdir -p "$CACHE"
for arch in arm64 armhf; do
	root=$CACHE/rootfs-$arch
	if [ -f "$root/.kmemfleet-done" ]; then
		continue
	fi
	rm -rf "$root" "$root.tmp"
	debootstrap --foreign --variant=minbase --arch="$arch" \
		--include=python3-minimal,libpython3.11-stdlib,ca-certificates \
		bookworm "$root.tmp" "$MIRROR"
	for deb in "$root.tmp"/var/cache/apt/archives/*.deb; do
		dpkg-deb -x "$deb" "$root.tmp"
	done
	rm -f "$root.tmp"/var/cache/apt/archives/*.deb
	touch "$root.tmp/.kmemfleet-done"
	mv "$root.tmp" "$root"
done

# Python packages of the manifest tests, in the project's virtualenv (the one
# `make test` uses; created here when missing, `make` completes it). They are
# also listed in pyproject's dev extra.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=${VENV:-$REPO/.venv}
if [ ! -x "$VENV/bin/python" ]; then
	python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import yaml, kubernetes_validate' 2>/dev/null; then
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check pyyaml kubernetes-validate
fi

echo "install-deploy.sh: done"
for arch in arm64 armhf; do
	echo "  $arch root: $CACHE/rootfs-$arch ($(du -sh "$CACHE/rootfs-$arch" | cut -f1))"
done
