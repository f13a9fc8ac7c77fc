# CMake toolchain file: kwsd for Debian armhf (32-bit Raspberry Pi OS on
# ARMv7 and later boards: Raspberry Pi 2, 3, 4, 5 and Zero 2 W), built with
# Debian's crossbuild-essential-armhf. Debian's armhf baseline is ARMv7-A with
# VFPv3-D16 and no NEON; the ARMv6 boards (Pi 1, Zero, Zero W) cannot run it.
# See debian-cross.cmake for the sysroot.
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=packaging/cmake/arm-linux-gnueabihf.cmake \
#         -DKWSD_SYSROOT=/var/cache/kwsd-cross/<sysroot>
# SPDX-License-Identifier: MIT
set(CMAKE_SYSTEM_PROCESSOR arm)
set(KWSD_CROSS_TRIPLET arm-linux-gnueabihf)
set(KWSD_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
