#!/bin/bash
# Install what the web console's browser tests (tests/web/) need on a Debian 12
# (bookworm) machine, as root: Debian's Chromium and its chromedriver. Selenium
# (a Python dev dependency) drives them; nothing downloads a browser of its own.
# Idempotent.
#
#   bash .ci/install-web.sh
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
	echo "install-web.sh: must run as root" >&2
	exit 1
fi
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
	exit 0
fi
apt-get update -q
apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
chromium --version
chromedriver --version
