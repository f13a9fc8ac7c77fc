# Tests of the tools (tools/): each spawns the built program.
if(TARGET kwsd-listen)
  kws_test(test_tools_listen LIBS kws_transport PkgConfig::JANSSON TIMEOUT 120)
  add_dependencies(test_tools_listen kwsd-listen)
endif()
