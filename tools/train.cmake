# kwsd-train (trains and writes .kwsm models) and kwsd-eval (accuracy,
# confusion matrix and streaming metrics of a model).
find_package(OpenMP REQUIRED COMPONENTS C)
add_executable(kwsd-train kwsd-train.c)
target_link_libraries(kwsd-train PRIVATE kws_train kws_audio kws_opt OpenMP::OpenMP_C)
add_executable(kwsd-eval kwsd-eval.c)
target_link_libraries(kwsd-eval PRIVATE kws_train kws_audio kws_opt PkgConfig::JANSSON OpenMP::OpenMP_C)
# installed by tools/install.cmake
# kwsd-eval scores with the daemon's own detector (kws/detector.h, in kws_core).
