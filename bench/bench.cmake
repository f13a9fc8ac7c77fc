# kwsd-bench: conv-delay vs dense DelRec recurrence timing (docs/BENCHMARKS.md, "Network").
# It times core internals (the ring read/scatter and the naive reference), so
# it also sees core/src.
add_executable(kwsd-bench ${PROJECT_SOURCE_DIR}/bench/kwsd-bench.c)
target_link_libraries(kwsd-bench PRIVATE kws_core)
target_include_directories(kwsd-bench PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
# Same optimisation as kws_core, so the training-time forms timed here get the
# same compiler help as the engine.
if(KWSD_O3)
  target_compile_options(kwsd-bench PRIVATE $<$<NOT:$<CONFIG:Debug>>:-O3>)
endif()
# Debian 12's aarch64 GCC 12.2 stops with an internal compiler error in the
# loop vectoriser on this file; the engine it times is in kws_core
# and keeps its vectorisation.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  target_compile_options(kwsd-bench PRIVATE -fno-tree-vectorize)
endif()
