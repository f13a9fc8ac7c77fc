# kwsd-enroll: records or reads takes of a new word and builds a model that
# spots it (kws/enroll.h). It finds the shipped model and the negative pack
# where the package installs them, and writes models where the service
# reads them (KWSD_MODELDIR, documented in docs/ENROLL.md).
# SPDX-License-Identifier: MIT
set(KWSD_MODELDIR "${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/kwsd/models" CACHE PATH
  "Where kwsd-enroll writes the models it makes")
add_executable(kwsd-enroll kwsd-enroll.c)
target_link_libraries(kwsd-enroll PRIVATE kws_train kws_audio kws_config kws_opt)
target_compile_definitions(kwsd-enroll PRIVATE
  KWSD_DATADIR="${CMAKE_INSTALL_FULL_DATADIR}/kwsd"
  KWSD_MODELDIR="${KWSD_MODELDIR}")
# installed by tools/install.cmake
