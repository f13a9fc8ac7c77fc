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
# 64-bit off_t and ino_t (large file support, as Debian 13 builds its armhf
# packages). Without it readdir() fails with EOVERFLOW when a directory
# offset does not fit in 32 bits: under qemu-arm on a 64-bit kernel that is
# the case on ext4, whose offsets are 64-bit hashes, and dataset_load found
# no clips. Of the libraries kwsd links only libuv has off_t in its API (in
# uv_fs_t), and Debian's armhf libuv is itself built with 64-bit off_t
# (it calls pread64, readdir64). time_t stays 32-bit, as Debian 12 builds
# its armhf libraries.
string(APPEND CMAKE_C_FLAGS_INIT " -D_FILE_OFFSET_BITS=64")
set(KWSD_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
