#!/bin/bash
# Install Citus for the Citus-parametrised server tests (tests/citus/, issue 16)
# on a Debian 12 (bookworm) machine, as root. Idempotent and non-interactive.
#
#   bash .ci/install-citus.sh
#
# Debian 12 carries PostgreSQL 15 but no Citus package, and the Citus package
# repository is not reachable from CI, so Citus 13.2.2 is built from the source
# tarball in ../shared/vendor/ (beside the repository; $CITUS_TARBALL overrides)
# into Debian's PostgreSQL 15 (citus.so and the extension files go to
# /usr/lib/postgresql/15/lib and /usr/share/postgresql/15/extension). Nothing of
# Citus is copied into the project. The build runs under `nice` on at most 2
# jobs; about 3-5 minutes once, seconds when Citus is already installed.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TARBALL=${CITUS_TARBALL:-$REPO/../shared/vendor/citus-13.2.2-src.tar.gz}
VERSION=13.2.2
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
APT="apt-get -y -q -o DPkg::Lock::Timeout=900 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

if [ "$(id -u)" != 0 ]; then
	echo "install-citus.sh: must run as root" >&2
	exit 1
fi

# The server and its headers at one version: Citus built against newer headers
# may call a function an older server binary does not export.
need_pkgs=
for p in postgresql-15 postgresql-server-dev-15 postgresql-client-15 gcc make \
	libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev \
	libxslt1-dev libpam0g-dev libreadline-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		need_pkgs="$need_pkgs $p"
done
server=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
dev=$(dpkg-query -W -f='${Version}' postgresql-server-dev-15 2>/dev/null || true)
if [ -n "$need_pkgs" ] || [ "$server" != "$dev" ]; then
	apt-get update -q
	# policy-rc.d keeps the package's cluster from being started where an init
	# runs (one already there is left as it is).
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
		made_policy=1
	fi
	# shellcheck disable=SC2086
	$APT install --no-install-recommends postgresql-15 postgresql-server-dev-15 $need_pkgs
	# Only this install needs it: gone before the build sets its own EXIT trap,
	# so later package installs on the host start their services again.
	if [ -n "${made_policy:-}" ]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
fi

# Built already for this server version? (citus.so records no server version:
# a stamp beside it does.)
LIBDIR=$("$PG_CONFIG" --pkglibdir)
STAMP="$LIBDIR/citus.kmemfleet-stamp"
want="citus $VERSION for postgresql-15 $(dpkg-query -W -f='${Version}' postgresql-15)"
if [ -f "$LIBDIR/citus.so" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
	echo "install-citus.sh: $want already installed"
	exit 0
fi

if [ ! -f "$TARBALL" ]; then
	echo "install-citus.sh: $TARBALL not found (the vendored Citus source; see" \
		"../shared/vendor/README.md)" >&2
	exit 1
fi

BUILD=$(mktemp -d /tmp/citus-build.XXXXXX)
trap 'rm -rf "$BUILD"' EXIT
tar -xzf "$TARBALL" -C "$BUILD"
SRC=$(find "$BUILD" -mindepth 1 -maxdepth 1 -type d | head -n1)
cd "$SRC"
# Debian's PostgreSQL 15.20 exports have_createdb_privilege(), which Citus
# 13.2.2 still defines as a static inline for PG 15: rename Citus's copy when
# the server's header declares the function (vendor README), so the server's
# own is used. Older 15.x lack it and keep Citus's.
if grep -q 'have_createdb_privilege' "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"; then
	sed -i 's/^have_createdb_privilege(void)$/have_createdb_privilege_compat(void)/' \
		src/include/pg_version_compat.h
fi
nice ./configure -q PG_CONFIG="$PG_CONFIG" >/dev/null
nice make -s -j2 >/dev/null
make -s install >/dev/null
echo "$want" >"$STAMP"
echo "install-citus.sh: installed $want ($LIBDIR/citus.so)"
