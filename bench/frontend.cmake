# kwsd-bench-frontend: ns per frame of resampler + front end + encoder, and
# spike statistics of the encoders on sound files (docs/BENCHMARKS.md).
add_executable(kwsd-bench-frontend ${CMAKE_CURRENT_SOURCE_DIR}/kwsd-bench-frontend.c)
target_link_libraries(kwsd-bench-frontend PRIVATE kws_audio m)
