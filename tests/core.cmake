kws_test(test_core_err LIBS kws_core)
