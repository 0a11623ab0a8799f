#!/bin/sh
# Installs the Debian 12 packages dizuo needs to build and test, only those
# missing. As root it runs apt-get; otherwise it prints the command to run.
set -eu
PACKAGES="build-essential cmake pkg-config clang libclang-rt-14-dev libpcre2-dev libjansson-dev libmicrohttpd-dev libsqlite3-dev libssl-dev libopenmpi-dev openmpi-bin"
# The OpenCL backend: the ICD loader and headers to build against, and PoCL,
# an OpenCL implementation on the CPU, so that the backend is tested anywhere.
PACKAGES="$PACKAGES ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd"
# The end-to-end tests of the server run on Node.js with npm (the openai
# package, from tests/e2e/package-lock.json); Debian's nodejs when none is there.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs npm"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "dizuo needs these Debian packages:$missing" >&2
    echo "run: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || apt-get update
# shellcheck disable=SC2086
apt-get install -y -qq $missing
