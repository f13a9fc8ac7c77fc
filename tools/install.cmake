# Installs the user programs and their manual pages (included at the end of
# tools/CMakeLists.txt). kwsd-bench is a development tool and is not installed.
# SPDX-License-Identifier: MIT
foreach(prog kwsd-listen kwsd-train kwsd-eval kwsd-enroll)
  if(TARGET ${prog})
    install(TARGETS ${prog} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
    install(FILES ${PROJECT_SOURCE_DIR}/packaging/man/${prog}.1
      DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  endif()
endforeach()
