# Tests of kws_transport (transport/), with real ZeroMQ subscribers.
kws_test(test_transport_pub LIBS kws_transport PkgConfig::ZMQ PkgConfig::JANSSON TIMEOUT 120)
# The MQTT publisher on a libuv loop against a real mosquitto broker.
kws_test(test_transport_mqtt LIBS kws_transport PkgConfig::MOSQUITTO PkgConfig::UV Threads::Threads
         TIMEOUT 120)
