# kwsd-train (trains and writes .kwsm models) and kwsd-eval (accuracy,
# confusion matrix and streaming metrics of a model).
find_package(OpenMP REQUIRED COMPONENTS C)
add_executable(kwsd-train kwsd-train.c)
target_link_libraries(kwsd-train PRIVATE kws_train kws_audio OpenMP::OpenMP_C)
add_executable(kwsd-eval kwsd-eval.c)
target_link_libraries(kwsd-eval PRIVATE kws_train kws_audio PkgConfig::JANSSON OpenMP::OpenMP_C)
# installed by tools/install.cmake
# kwsd-eval scores with the daemon's own detector (core/src/detector.c); build
# it in directly while kws_core does not list it yet.
get_target_property(_kws_core_srcs kws_core SOURCES)
if(NOT _kws_core_srcs MATCHES "detector\\.c")
  target_sources(kwsd-eval PRIVATE ${PROJECT_SOURCE_DIR}/core/src/detector.c)
  target_include_directories(kwsd-eval PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
endif()
