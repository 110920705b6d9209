#!/usr/bin/env bash
# Debian packages the test suite drives for real; installed only when missing.
set -euo pipefail
packages=(chromium sip-tester baresip iproute2 libnss3-tools nginx openssl stress-ng haproxy)
# iproute2: the capacity harness emulates the WAN with ip and tc; the cross-host test (tests/deploy/) also
# makes its hosts with it. libnss3-tools (certutil): that test's browsers trust its throw-away CA;
# nginx: the control plane behind a TLS-terminating proxy there; openssl: scripts/dev-ca.sh
# (scripts/bench/sip.py also uses kamailio; it is not needed by the tests)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)  # not piped to grep -q: SIGPIPE under pipefail
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
exec "$(dirname "$0")/apt-install.sh" "${missing[@]}"
