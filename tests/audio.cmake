# Tests of kws_audio (front end, resampler, file reader, pipe, ALSA capture).
kws_test(test_audio_frontend LIBS kws_audio Threads::Threads m TIMEOUT 120)
kws_test(test_audio_capture LIBS kws_audio PkgConfig::ALSA PkgConfig::UV m TIMEOUT 120)
kws_test(test_audio_resample LIBS kws_audio m TIMEOUT 60)
kws_test(test_audio_file LIBS kws_audio PkgConfig::SNDFILE m TIMEOUT 60)
kws_test(test_audio_pipe LIBS kws_audio m TIMEOUT 60)
# An external ALSA plugin (ioplug) the capture tests load through alsa-lib:
# a pollable, overrunnable, unpluggable test microphone.
add_library(asound_module_pcm_kwstest MODULE fixtures/audio/alsa_test_plugin.c)
target_link_libraries(asound_module_pcm_kwstest PRIVATE PkgConfig::ALSA)
target_compile_definitions(asound_module_pcm_kwstest PRIVATE PIC) # alsa-lib's dlsym macros
set_target_properties(asound_module_pcm_kwstest PROPERTIES PREFIX "lib")
target_compile_definitions(test_audio_capture PRIVATE
  KWS_ALSA_TEST_PLUGIN="$<TARGET_FILE:asound_module_pcm_kwstest>")
add_dependencies(test_audio_capture asound_module_pcm_kwstest)
kws_test(test_audio_file_hostile LIBS kws_audio PkgConfig::SNDFILE m TIMEOUT 60)
