# Tests of kws_audio (front end, resampler, file reader, pipe, ALSA capture).
kws_test(test_audio_frontend LIBS kws_audio Threads::Threads m TIMEOUT 120)
kws_test(test_audio_capture LIBS kws_audio PkgConfig::ALSA PkgConfig::UV m TIMEOUT 120)
kws_test(test_audio_resample LIBS kws_audio m TIMEOUT 60)
kws_test(test_audio_file LIBS kws_audio PkgConfig::SNDFILE m TIMEOUT 60)
kws_test(test_audio_pipe LIBS kws_audio m TIMEOUT 60)
