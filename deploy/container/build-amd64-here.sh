#!/bin/bash
# Build the amd64 server (or agent) image without a Docker engine and without
# a container registry: the only sources are Debian's archive and PyPI.
#
#   bash deploy/container/build-amd64-here.sh [server|agent]
#
# 1. debootstrap makes a Debian bookworm base with python3 + venv
#    (stand-in for docker.io/library/python:3.11-slim-bookworm, which cannot
#    be pulled where only Debian and PyPI are reachable);
# 2. buildah builds deploy/container/<what>.Containerfile on it
#    (chroot isolation, host network for pip);
# 3. the image is saved as an OCI archive under build/images/.
# Needs root, debootstrap and buildah (apt-get install debootstrap buildah).
set -euo pipefail
WHAT=${1:-server}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
OUT=$REPO/build/images
BASE=localhost/kmemfleet-python-base:bookworm
BUILDAH=(buildah --storage-driver="${STORAGE_DRIVER:-vfs}")
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$OUT"

if ! "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
	rootfs=$OUT/base-rootfs
	rm -rf "$rootfs"
	debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
		bookworm "$rootfs" "$MIRROR"
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	ctr=$("${BUILDAH[@]}" from scratch)
	"${BUILDAH[@]}" copy "$ctr" "$rootfs" / >/dev/null
	"${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--cmd '["python3"]' "$ctr"
	"${BUILDAH[@]}" commit --rm "$ctr" "$BASE" >/dev/null
	rm -rf "$rootfs"
fi

# pip inside the build trusts what pip trusts here (e.g. a proxy's CA).
CA=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
CA_ARGS=()
if [ -f "$CA" ]; then
	CA_ARGS=(--volume "$CA:/etc/ssl/certs/build-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/certs/build-ca.crt)
fi
"${BUILDAH[@]}" bud --isolation chroot --network host --platform linux/amd64 "${CA_ARGS[@]}" \
	--build-arg PYTHON_IMAGE="$BASE" -f "$REPO/deploy/container/$WHAT.Containerfile" \
	-t "localhost/kmemfleet-$WHAT:dev" "$REPO"
rm -f "$OUT/kmemfleet-$WHAT-amd64.oci.tar"
"${BUILDAH[@]}" push "localhost/kmemfleet-$WHAT:dev" "oci-archive:$OUT/kmemfleet-$WHAT-amd64.oci.tar"
echo "image: $OUT/kmemfleet-$WHAT-amd64.oci.tar ($(du -h "$OUT/kmemfleet-$WHAT-amd64.oci.tar" | cut -f1))"
