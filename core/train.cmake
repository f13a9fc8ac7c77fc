# kws_train: BPTT trainer (surrogate gradients, learned delays, AdamW) and the
# folder-per-label data set loader with augmentation. OpenMP spreads each op
# over the cores; -O3 because the trainer's inner loops are its whole cost.
find_package(OpenMP REQUIRED COMPONENTS C)
file(GLOB KWS_TRAIN_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/src/train*.c
  ${CMAKE_CURRENT_SOURCE_DIR}/src/dataset*.c)
add_library(kws_train STATIC ${KWS_TRAIN_SOURCES})
target_include_directories(kws_train PUBLIC include PRIVATE src)
target_compile_options(kws_train PRIVATE -O3)
# kws_audio is defined later (audio/ follows core/); CMake resolves the name at
# generate time.
target_link_libraries(kws_train PUBLIC kws_core kws_audio PRIVATE OpenMP::OpenMP_C)
