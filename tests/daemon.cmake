kws_test(test_core_detector LIBS kws_core)
if(TARGET kwsd)
  kws_test(test_daemon_kwsd LIBS kws_core kws_audio PkgConfig::ZMQ PkgConfig::JANSSON TIMEOUT 600)
  add_dependencies(test_daemon_kwsd kwsd)
  # kwsm__crc32, to write models that only the field checks refuse
  target_include_directories(test_daemon_kwsd PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
  if(TARGET kwsd-eval)
    add_dependencies(test_daemon_kwsd kwsd-eval)
  endif()
endif()
# The same recording through a file and through ALSA at five period sizes.
if(TARGET kwsd)
  kws_test(test_daemon_same_audio LIBS PkgConfig::ZMQ PkgConfig::JANSSON TIMEOUT 600)
  add_dependencies(test_daemon_same_audio kwsd)
endif()
# A reload while peers of the event endpoint hold every descriptor.
if(TARGET kwsd)
  kws_test(test_daemon_peers TIMEOUT 120)
  add_dependencies(test_daemon_peers kwsd)
endif()
# kwsd's MQTT (Hermes) events and pause/resume, against a real mosquitto broker.
if(TARGET kwsd AND TARGET kwsd-eval)
  kws_test(test_daemon_mqtt LIBS PkgConfig::MOSQUITTO PkgConfig::ZMQ PkgConfig::JANSSON
           Threads::Threads m TIMEOUT 300)
  add_dependencies(test_daemon_mqtt kwsd kwsd-eval)
endif()
# kwsd with several models at once (model.paths, model.dir), an enrolled word
# next to the shipped model.
if(TARGET kwsd AND TARGET kwsd-eval)
  kws_test(test_daemon_models LIBS kws_core kws_audio PkgConfig::ZMQ PkgConfig::JANSSON TIMEOUT 600)
  add_dependencies(test_daemon_models kwsd kwsd-eval)
  if(TARGET kwsd-enroll)
    add_dependencies(test_daemon_models kwsd-enroll)
  endif()
endif()
# kwsd's event endpoint with CURVE (transport.curve): allowed, unknown and plain
# subscribers, and kwsd-listen with the allowed and an unknown client key.
if(TARGET kwsd)
  kws_test(test_daemon_curve LIBS kws_core kws_audio PkgConfig::ZMQ TIMEOUT 300)
  add_dependencies(test_daemon_curve kwsd)
  if(TARGET kwsd-listen)
    add_dependencies(test_daemon_curve kwsd-listen)
  endif()
endif()
