# Tests of the tools (tools/): each spawns the built program.
if(TARGET kwsd-listen)
  kws_test(test_tools_listen LIBS kws_transport PkgConfig::JANSSON TIMEOUT 120)
  add_dependencies(test_tools_listen kwsd-listen)
endif()
# The option tables of kwsd-train, kwsd-eval and kwsd-enroll (tools/opt.c):
# bad values, documented values and defaults, through the built programs.
if(TARGET kwsd-train AND TARGET kwsd-eval AND TARGET kwsd-enroll)
  kws_test(test_tools_options LIBS kws_train kws_config TIMEOUT 120)
  add_dependencies(test_tools_options kwsd-train kwsd-eval kwsd-enroll)
endif()
