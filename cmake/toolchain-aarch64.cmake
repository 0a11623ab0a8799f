# Cross build for aarch64 Linux with Debian's cross compiler (gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross); programs run under qemu-user (qemu-aarch64), which
# CTest puts before each test program. Used by scripts/cross-test.sh with
# -DDZ_CORE_ONLY=ON (docs/cross.md).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(DZ_CROSS_TRIPLE aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${DZ_CROSS_TRIPLE}-gcc)
# Headers, libraries and packages from the target's root only; programs
# (pkg-config, the compiler) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${DZ_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# -L: the target's dynamic loader and libraries.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-aarch64 -L /usr/${DZ_CROSS_TRIPLE})
