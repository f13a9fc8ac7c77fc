# Trainer tests: finite-difference gradient checks, surrogate formulas,
# export equivalence with snn_forward, checkpoints and the data set loader.
kws_test(test_train_grad LIBS kws_train)
kws_test(test_train_model LIBS kws_train)
kws_test(test_train_dataset LIBS kws_train PkgConfig::SNDFILE)
