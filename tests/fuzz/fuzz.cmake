# Fuzz targets (docs/RELIABILITY.md). With -DKWSD_FUZZ=ON (clang only) each
# target links libFuzzer and searches for inputs that break it. Every build
# also gets a replay binary per target, which ctest runs over the target's
# seed corpus and its regress/ folder (inputs that once found a bug).
set(_fz ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(_fuzz_targets config model audio)
set(_fuzz_libs_config kws_config)
set(_fuzz_libs_model kws_core kws_audio m)
set(_fuzz_libs_audio kws_core kws_audio m)

foreach(t ${_fuzz_targets})
  set(_defs KWSD_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  add_executable(fuzz_${t}_replay ${_fz}/fuzz_${t}.c ${_fz}/replay.c)
  target_link_libraries(fuzz_${t}_replay PRIVATE ${_fuzz_libs_${t}})
  target_include_directories(fuzz_${t}_replay PRIVATE ${_fz} ${PROJECT_SOURCE_DIR}/core/src)
  target_compile_definitions(fuzz_${t}_replay PRIVATE ${_defs})
  add_test(NAME fuzz_${t}_replay
    COMMAND fuzz_${t}_replay ${_fz}/corpus/${t} ${_fz}/regress/${t})
  set_tests_properties(fuzz_${t}_replay PROPERTIES TIMEOUT 120)
  if(KWSD_FUZZ)
    add_executable(fuzz_${t} ${_fz}/fuzz_${t}.c)
    target_link_libraries(fuzz_${t} PRIVATE ${_fuzz_libs_${t}})
    target_include_directories(fuzz_${t} PRIVATE ${_fz} ${PROJECT_SOURCE_DIR}/core/src)
    target_compile_definitions(fuzz_${t} PRIVATE ${_defs})
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
  endif()
endforeach()
