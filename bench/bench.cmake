# kwsd-bench: conv-delay vs dense DelRec recurrence timing (docs/BENCHMARKS.md, "Network").
# It times core internals (the ring read/scatter and the naive reference), so
# it also sees core/src.
add_executable(kwsd-bench ${PROJECT_SOURCE_DIR}/bench/kwsd-bench.c)
target_link_libraries(kwsd-bench PRIVATE kws_core)
target_include_directories(kwsd-bench PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
