#!/usr/bin/env bash
# `make test-asan`: media.native (RTP forwarding's C, media/native.h) built with AddressSanitizer and
# UBSan apart from the editable install, then its tests and a longer fuzz run (tests/media/test_native_fuzz.py)
# against that build. Exits non-zero on a failing test or any sanitizer report.
#
#   scripts/test-asan.sh [PYTHON]   PYTHON: the project's venv interpreter (default .venv/bin/python)
#   NATIVE_FUZZ_SECONDS (default 60), NATIVE_FUZZ_SEED (default 22): the fuzz run's length and seed
#
# Where: var/asan/build-venv (setuptools >= 74, which reads [tool.setuptools] ext-modules; the project
# venv's may be older), var/asan/site/media (the package's Python files linked, the sanitizer build of
# native beside them). The tests run from var/asan/site with PYTHONPATH on it and pytest's importlib
# mode, so `media` is that copy: the script checks media.native.__file__, and the fuzz test checks it
# again inside pytest (CONFCTL_NATIVE_BUILD).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python="${1:-.venv/bin/python}"
python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")
root=$repo/var/asan
venv=$root/build-venv
site=$root/site
log=$root/test.log
started=$(date +%s)

# 1. A build venv with setuptools new enough for pyproject.toml's ext-modules (kept between runs).
if ! "$venv/bin/python" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 74)' 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check 'setuptools>=74'
fi

# 2. The extension, from pyproject.toml's own ext-modules entry, with the sanitizers.
sanitize="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
rm -rf "$site" "$root/tmp"
mkdir -p "$site/media" "$root/tmp"
if ! CFLAGS="$sanitize" LDFLAGS="$sanitize" "$venv/bin/python" - "$site" "$root/tmp" >"$root/build.log" 2>&1 <<'PY'
import sys
from setuptools import setup
setup(script_args=["build_ext", "--build-lib", sys.argv[1], "--build-temp", sys.argv[2], "--force"])
PY
then
    cat "$root/build.log"
    exit 1
fi
built=$(ls "$site"/media/native*.so)
# ldd's whole output first: `ldd | grep -q` under pipefail fails when grep exits before ldd has written
# its last line (SIGPIPE, 141), which is what a loaded CI machine did.
linked=$(ldd "$built")
if ! grep -q libasan <<<"$linked"; then
    echo "test-asan: $built is not linked with libasan; ldd says:" >&2
    echo "$linked" >&2
    exit 1
fi

# 3. The rest of the package beside it, linked (the tests import media.rtp_output, media.forwarding, ...).
(cd media && find . -name '*.py' -not -path '*/__pycache__/*') | while read -r f; do
    mkdir -p "$site/media/$(dirname "$f")"
    ln -s "$repo/media/$f" "$site/media/$f"
done

# 4. Run under the sanitizers: the ASAN runtime first in the process, Python's allocator off so each
# object is its own malloc ASAN can guard, leaks not reported (CPython keeps objects until exit).
export LD_PRELOAD
LD_PRELOAD=$(gcc -print-file-name=libasan.so)
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
export PYTHONMALLOC=malloc
export PYTHONPATH=$site
export CONFCTL_NATIVE_BUILD=$site/media
export NATIVE_FUZZ_SECONDS="${NATIVE_FUZZ_SECONDS:-60}"
cd "$site"
loaded=$("$python" -c 'import os, media.native as n; print(os.path.realpath(n.__file__))')
if [ "$loaded" != "$(realpath "$built")" ]; then
    echo "test-asan: media.native loads from $loaded, not the sanitizer build $built" >&2
    exit 1
fi
echo "test-asan: $loaded (built in $(( $(date +%s) - started )) s); fuzzing ${NATIVE_FUZZ_SECONDS} s, seed ${NATIVE_FUZZ_SEED:-22}"
set +e
"$python" -m pytest -q -s -p no:cacheprovider --import-mode=importlib -c "$repo/pyproject.toml" --rootdir "$repo" \
    "$repo/tests/media/test_native_output.py" "$repo/tests/media/test_native_input.py" \
    "$repo/tests/media/test_rtp_output.py" "$repo/tests/media/test_rtp_input.py" \
    "$repo/tests/media/test_native_fuzz.py" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined)" "$log"; then
    echo "test-asan: sanitizer report in $log" >&2
    [ "$status" -ne 0 ] || status=1
fi
echo "test-asan: exit $status after $(( $(date +%s) - started )) s"
exit "$status"
