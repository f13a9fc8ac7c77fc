# Trainer tests: finite-difference gradient checks, surrogate formulas,
# export equivalence with snn_forward, checkpoints, the data set loader and
# the evaluation streams; train_run end to end and clip_eval_run; enrolment.
kws_test(test_train_grad LIBS kws_train)
kws_test(test_train_model LIBS kws_train)
kws_test(test_train_dataset LIBS kws_train PkgConfig::SNDFILE)
kws_test(test_train_room LIBS kws_train)
kws_test(test_train_stream LIBS kws_train PkgConfig::SNDFILE)
kws_test(test_train_recipe LIBS kws_train PkgConfig::SNDFILE)
# kwsd-enroll's library: checking takes, a tiny enrolment from espeak-ng takes,
# recording through ALSA's file plugin (needs espeak-ng and sox).
kws_test(test_train_enroll LIBS kws_train PkgConfig::SNDFILE)
add_dependencies(test_train_enroll kwsd-enroll kwsd)
# One recording through the daemon (kwsd --input), kwsd-eval --wav and the
# stream metric: the same events (needs espeak-ng and sox).
kws_test(test_train_same_events LIBS kws_train PkgConfig::SNDFILE)
add_dependencies(test_train_same_events kwsd kwsd-eval)
# OpenMP threads that spin while waiting make the tests crawl on a busy
# machine (seen: 0.7 s -> 58 s next to a training run); let them sleep.
set_tests_properties(test_train_grad test_train_model test_train_dataset test_train_room test_train_stream
  test_train_recipe test_train_enroll test_train_same_events
  PROPERTIES ENVIRONMENT "OMP_WAIT_POLICY=passive")
