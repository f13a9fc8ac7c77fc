# Shared part of kwsd's cross toolchain files: Debian's cross compilers
# (crossbuild-essential-<arch>) against Debian's multiarch -dev packages.
#
# The target libraries come either from a sysroot (a folder holding the
# target's /usr/lib/<triplet> and /usr/include, e.g. the one scripts/cross
# extracts with mmdebstrap), given as -DKWSD_SYSROOT=<dir> or the
# environment variable KWSD_SYSROOT, or, when none is given, from the host's
# own multiarch directories (dpkg --add-architecture <arch>; apt-get install
# libuv1-dev:<arch> ...). Tests run under qemu-user through
# CMAKE_CROSSCOMPILING_EMULATOR; Criterion re-executes its test binaries, so
# the qemu binfmt_misc handlers must be registered too (scripts/cross does).
# The including file sets KWSD_CROSS_TRIPLET, KWSD_CROSS_QEMU and
# CMAKE_SYSTEM_PROCESSOR.
# SPDX-License-Identifier: MIT
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${KWSD_CROSS_TRIPLET}-gcc)

if(NOT KWSD_SYSROOT AND DEFINED ENV{KWSD_SYSROOT})
  set(KWSD_SYSROOT "$ENV{KWSD_SYSROOT}")
endif()
# try_compile() projects re-read this file; pass the sysroot on to them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES KWSD_SYSROOT)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

if(KWSD_SYSROOT)
  set(CMAKE_SYSROOT "${KWSD_SYSROOT}")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${KWSD_SYSROOT}")
else()
  set(CMAKE_FIND_ROOT_PATH /)
  unset(ENV{PKG_CONFIG_SYSROOT_DIR})
endif()
# Only the target's .pc files, never the build machine's.
set(ENV{PKG_CONFIG_LIBDIR}
  "${KWSD_SYSROOT}/usr/lib/${KWSD_CROSS_TRIPLET}/pkgconfig:${KWSD_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

find_program(KWSD_QEMU NAMES ${KWSD_CROSS_QEMU}-static ${KWSD_CROSS_QEMU})
if(KWSD_QEMU)
  if(KWSD_SYSROOT)
    # QEMU_LD_PREFIX (not -L) so that processes the test re-executes through
    # binfmt_misc find the sysroot's loader and libraries too.
    set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/env QEMU_LD_PREFIX=${KWSD_SYSROOT} ${KWSD_QEMU})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${KWSD_QEMU})
  endif()
endif()
