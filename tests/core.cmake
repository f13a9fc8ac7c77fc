# Tests of kws_core: the error table, the SNN engine, the model file and golden outputs.
kws_test(test_core_err LIBS kws_core)
kws_test(test_core_snn LIBS kws_core)
target_include_directories(test_core_snn PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
kws_test(test_core_model_file LIBS kws_core)
target_include_directories(test_core_model_file PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
# Hostile model files: the loader's refusals, and a sweep whose survivors must
# build their front end (kws_audio), as the daemon will.
kws_test(test_core_model_hostile LIBS kws_core kws_audio m)
target_include_directories(test_core_model_hostile PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
kws_test(test_core_golden LIBS kws_core)
# The benchmark runs end to end (no timing is asserted; it checks its forms agree).
if(TARGET kwsd-bench)
  add_test(NAME kwsd_bench_quick COMMAND kwsd-bench --quick --json)
  set_tests_properties(kwsd_bench_quick PROPERTIES TIMEOUT 120)
endif()
# The listening path: threshold rule, network + detector per frame, the hold.
kws_test(test_core_listener LIBS kws_core)
# The second look against an enrolled word's takes (kws/verify.h), and the
# listener's wait for it.
kws_test(test_core_verify LIBS kws_core)
