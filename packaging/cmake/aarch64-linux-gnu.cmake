# CMake toolchain file: kwsd for Debian arm64 (64-bit Raspberry Pi OS and
# Debian on Raspberry Pi 3, 4, 5 and Zero 2 W), built with Debian's
# crossbuild-essential-arm64. See debian-cross.cmake for the sysroot.
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=packaging/cmake/aarch64-linux-gnu.cmake \
#         -DKWSD_SYSROOT=/var/cache/kwsd-cross/<sysroot>
# SPDX-License-Identifier: MIT
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(KWSD_CROSS_TRIPLET aarch64-linux-gnu)
set(KWSD_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
