#!/bin/sh
# End-to-end tests of `dizuo serve` with the official openai npm package.
#
#   DIZUO=/path/to/dizuo SHARED=/path/to/shared sh tests/e2e/run.sh [node --test args...]
#
# Exit 77 (skipped, one line on stdout saying why) without node/npm or without
# $SHARED/models/stories260K.gguf. Installs the pinned packages from the lockfile
# (npm ci) when node_modules is absent or older than package-lock.json.
set -u
here=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-$here/../../../shared}
DIZUO=${DIZUO:-}

# DZ_REQUIRE_SHARED=1 (CI) turns a skip into a failure, as for the C tests.
skip() {
    if [ "${DZ_REQUIRE_SHARED:-0}" = 1 ]; then echo "e2e: cannot run: $1" >&2; exit 1; fi
    echo "e2e skipped: $1"; exit 77
}

command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || skip "node does not run"
[ "$major" -ge 18 ] 2>/dev/null || skip "node $(node --version) is older than 18"
[ -f "$SHARED/models/stories260K.gguf" ] || skip "model $SHARED/models/stories260K.gguf is absent"
[ -n "$DIZUO" ] || { echo "e2e: set DIZUO to the dizuo binary" >&2; exit 2; }
[ -x "$DIZUO" ] || { echo "e2e: DIZUO=$DIZUO is not an executable" >&2; exit 2; }

DIZUO=$(cd "$(dirname "$DIZUO")" && pwd)/$(basename "$DIZUO")
SHARED=$(cd "$SHARED" && pwd)
export DIZUO SHARED

cd "$here" || exit 2
stamp=node_modules/.package-lock.json   # written by npm ci / npm install
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    echo "e2e: npm ci" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2 || { echo "e2e: npm ci failed" >&2; exit 1; }
fi

# One test file at a time: each starts its own server with 2 threads; the machine may
# have only 2 cores. --test-reporter=spec prints each test by name.
if [ "$#" -eq 0 ]; then set -- ./*.test.mjs; fi
exec node --test --test-concurrency=1 --test-reporter=spec "$@"
