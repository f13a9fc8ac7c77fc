kws_test(test_core_detector LIBS kws_core)
