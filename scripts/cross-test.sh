#!/usr/bin/env bash
# Cross-builds dizuo's portable core (-DDZ_CORE_ONLY=ON) for another
# processor with Debian's cross compiler and runs its tests under qemu-user
# (docs/cross.md):
#
#   scripts/cross-test.sh aarch64|riscv64      (make cross-test ARCH=...)
#
# Installs what it needs when missing (the cross compiler and C library,
# qemu-user, cmake): as root with apt-get, as scripts/install-deps.sh does;
# otherwise it prints the command and stops. Builds in build-cross-<arch>
# (or $DZ_CROSS_BUILD) with $JOBS jobs. Exits nonzero when the build or any
# test fails, after a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
case "$arch" in
aarch64) debarch=arm64 ;;
riscv64) debarch=riscv64 ;;
*)
    echo "usage: scripts/cross-test.sh aarch64|riscv64 (got '${arch}')" >&2
    exit 2
    ;;
esac
triple=$arch-linux-gnu
build=${DZ_CROSS_BUILD:-build-cross-$arch}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# ---- packages ----
packages="cmake make gcc-$triple libc6-dev-$debarch-cross qemu-user"
missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "cross-test $arch needs these Debian packages:$missing" >&2
        echo "run: sudo apt-get install -y$missing" >&2
        exit 1
    fi
    echo "installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || apt-get update
    # Without recommends: qemu-user's (qemu-user-binfmt) registers emulators
    # with the kernel, which the tests do not use (CTest runs qemu itself).
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi

# ---- build ----
start=$(date +%s)
# The accelerator backends are off: their SDKs are the host's.
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="cmake/toolchain-$arch.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DDZ_CORE_ONLY=ON -DDZ_CUDA=OFF -DDZ_OPENCL=OFF
cmake --build "$build" -j "$jobs"
built=$(date +%s)

# ---- tests, each program under qemu-$arch ----
# The fast-path level the emulated processor's "cpu" device runs by default.
level=$("$build/dizuo-emulated" devices 2>/dev/null | awk '$1 == "cpu" { sub(/.*fast \(/, ""); sub(/\).*/, ""); print }' || true)
echo "cross-test $arch: the cpu device runs the '${level:-?}' fast path under $(qemu-"$arch" --version | head -n 1)"
rc=0
(cd "$build" && ctest --output-on-failure -j "$jobs") 2>&1 | tee "$build/cross-test.log" || rc=$?
done_at=$(date +%s)

result=$(grep -E "tests passed|No tests were found" "$build/cross-test.log" | tail -n 1 || true)
echo
echo "cross-test $arch ($("$triple-gcc" -dumpfullversion), DZ_CORE_ONLY, default fast path '${level:-?}'):" \
    "${result:-no test result}; build $((built - start)) s, tests $((done_at - built)) s"
exit "$rc"
