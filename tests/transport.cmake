# Tests of kws_transport (transport/), with real ZeroMQ subscribers.
kws_test(test_transport_pub LIBS kws_transport PkgConfig::ZMQ PkgConfig::JANSSON TIMEOUT 120)
# The MQTT publisher on a libuv loop against a real mosquitto broker.
kws_test(test_transport_mqtt LIBS kws_transport PkgConfig::MOSQUITTO PkgConfig::UV Threads::Threads
         TIMEOUT 120)
# The Wyoming wake-word server inside a running kwsd, with a client written
# from the protocol's documentation.
if(TARGET kwsd)
  kws_test(test_transport_wyoming LIBS kws_core PkgConfig::ZMQ PkgConfig::JANSSON TIMEOUT 300)
  add_dependencies(test_transport_wyoming kwsd)
  if(TARGET kwsd-eval)
    add_dependencies(test_transport_wyoming kwsd-eval)
  endif()
endif()
# The publisher with CURVE and its ZAP handler; the key generator.
kws_test(test_transport_curve LIBS kws_transport PkgConfig::ZMQ TIMEOUT 60)
