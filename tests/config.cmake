# Tests of kws_config (config/).
kws_test(test_config_errors LIBS kws_config TIMEOUT 60)
kws_test(test_config_load LIBS kws_config TIMEOUT 60)
kws_test(test_config_dump LIBS kws_config TIMEOUT 60)
# transport.curve's key files (tests/test_config_curve.c).
kws_test(test_config_curve LIBS kws_config TIMEOUT 60)
