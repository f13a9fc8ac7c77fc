/* recipe_internal.h: helpers of train_run (kws/recipe.h) that live in their own files.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_RECIPE_INTERNAL_H
#define KWS_TRAIN_RECIPE_INTERNAL_H

/* Fills dir with espeak-ng keyword and unknown-word clips (per_voice clips
 * per voice and word, n_unknown non-keywords per voice, at rate Hz) unless
 * it already has a testing_list.txt; held-out voices go to that list.
 * Returns how many clips it made (0: dir was complete) or a negative code. */
int train__synth_generate(const char *dir, char **labels, int n_labels, int per_voice,
                          int n_unknown, int rate);

/* Fills dir with flite's voices saying the keywords (and, with _unknown_,
 * other words) unless it holds .complete. Returns how many clips it made
 * (0: dir was complete) or a negative code. */
int train__flite_generate(const char *dir, char **labels, int n_labels, int rate);

#endif /* KWS_TRAIN_RECIPE_INTERNAL_H */
