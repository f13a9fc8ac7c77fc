# Tests of kws_transport (transport/), with real ZeroMQ subscribers.
kws_test(test_transport_pub LIBS kws_transport PkgConfig::ZMQ PkgConfig::JANSSON TIMEOUT 120)
