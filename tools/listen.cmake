# kwsd-listen: prints a running kwsd's events, one JSON line each.
add_executable(kwsd-listen kwsd-listen.c)
target_link_libraries(kwsd-listen PRIVATE kws_transport kws_config kws_core PkgConfig::ZMQ PkgConfig::JANSSON m)
target_compile_definitions(kwsd-listen PRIVATE KWSD_VERSION="${KWSD_VERSION}")
install(TARGETS kwsd-listen RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
