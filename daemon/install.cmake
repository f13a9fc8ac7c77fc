# Installs the daemon and its manual page (included by daemon/CMakeLists.txt).
# SPDX-License-Identifier: MIT
install(TARGETS kwsd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/packaging/man/kwsd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
