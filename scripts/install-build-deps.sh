#!/usr/bin/env bash
# What building media.native (RTP forwarding's C, media/native.h) needs: a C compiler and the headers of
# the Python that .venv is made from. Installed from Debian only when missing.
set -euo pipefail
python="${1:-python3}"
missing=()
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$include/Python.h" ] || missing+=(python3-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages to build media.native: ${missing[*]}"
exec "$(dirname "$0")/apt-install.sh" "${missing[@]}"
