#!/bin/bash
# Install what the release-gate and alert tests (tests/release/) need on a
# Debian 12 (bookworm) machine, as root: Debian's Prometheus (with promtool)
# and Alertmanager. The tests start their own instances on loopback ports; the
# packages' services are neither needed nor started. Idempotent.
#
#   bash .ci/install-alerts.sh
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
	echo "install-alerts.sh: must run as root" >&2
	exit 1
fi
if command -v prometheus >/dev/null && command -v promtool >/dev/null \
	&& command -v prometheus-alertmanager >/dev/null; then
	exit 0
fi
apt-get update -q
# policy-rc.d keeps the packages' services from starting where an init runs
# (one already there is left as it is).
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager >/dev/null
prometheus --version | head -1
prometheus-alertmanager --version | head -1
