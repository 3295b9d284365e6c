#!/bin/bash
# Refresh the vendored uPlot in kmemfleet/server/web/static/vendor/ from its npm
# package, pinned by version and by the tarball's sha512 (npm's "integrity").
# The console serves these files itself: no CDN, appliances' management networks
# are often offline. To upgrade: change VERSION and INTEGRITY (from
# `npm view uplot@NEW dist.integrity`), run this, commit the files and SHA256SUMS.
#
#   bash deploy/web/vendor-uplot.sh
set -euo pipefail

VERSION=1.6.32
INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==

cd "$(dirname "$0")/../.."
dest=kmemfleet/server/web/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null)
tarball="$work/uplot-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
	echo "vendor-uplot.sh: uplot-$VERSION.tgz is $got, pinned $INTEGRITY" >&2
	exit 1
fi
tar -xzf "$tarball" -C "$work"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$dest/"
cp "$work/package/LICENSE" "$dest/uPlot.LICENSE"
(cd "$dest" && sha256sum uPlot.iife.min.js uPlot.min.css uPlot.LICENSE >SHA256SUMS)
echo "uPlot $VERSION vendored into $dest"
