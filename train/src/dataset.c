/* dataset.c: Speech Commands layout loader, word finder and example renderer.
 *
 * Loading lists each label folder (sorted, so the order never depends on the
 * file system), decodes the clips in parallel with audio_file_read at the
 * front end's rate, and finds each word's start and end: 10 ms frames whose
 * energy is within 25 dB of the clip's loudest frame. Rendering (see
 * kws/dataset.h) mixes, runs the front end and marks background frames.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "kws/audio_file.h"
#include "kws/dataset.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/room.h"
#include "kws/train.h"
#include "train_internal.h"

void dataset_aug_default(struct ds_aug *aug) {
    memset(aug, 0, sizeof *aug);
    aug->shift_ms = 100.0f;
    aug->gain_db_lo = -6.0f;
    aug->gain_db_hi = 6.0f;
    aug->snr_db_lo = 0.0f;
    aug->snr_db_hi = 25.0f;
    aug->p_noise = 0.8f;
    aug->sil_db_lo = -20.0f;
    aug->sil_db_hi = 6.0f;
    aug->p_ctx_word = 0.7f;    /* counts only with ctx_frames > 0 */
    aug->floor_db_lo = -100.0f; /* counts only with floor_p > 0 */
    aug->floor_db_hi = -50.0f;
    aug->rt60_lo = 0.2f; /* count only with p_reverb > 0 */
    aug->rt60_hi = 0.8f;
    aug->drr_db_lo = 0.0f;
    aug->drr_db_hi = 12.0f;
    aug->warm_frames = 30;
    aug->hold_frames = 30;
    aug->center = 1;
}

void dataset_aug_none(struct ds_aug *aug) {
    memset(aug, 0, sizeof *aug);
    aug->warm_frames = 30;
    aug->hold_frames = 30;
    aug->center = 1;
}

int dataset_init(struct dataset *ds, const char *const *labels, int n_labels, int rate) {
    memset(ds, 0, sizeof *ds);
    if (n_labels < 2 || n_labels > SNN_MAX_CLASSES || rate < 1000)
        return KWS_EBADFIELD;
    ds->rate = rate;
    ds->n_classes = n_labels;
    ds->sil_class = ds->unk_class = -1;
    for (int i = 0; i < n_labels; i++) {
        snprintf(ds->labels[i], SNN_LABEL_LEN, "%s", labels[i]);
        if (!strcmp(labels[i], "_silence_"))
            ds->sil_class = i;
        if (!strcmp(labels[i], "_unknown_"))
            ds->unk_class = i;
    }
    return 0;
}

void dataset_free(struct dataset *ds) {
    for (size_t i = 0; i < ds->n_clips; i++)
        free(ds->clips[i].x);
    free(ds->clips);
    for (size_t i = 0; i < ds->n_noise; i++)
        free(ds->noise[i]);
    free(ds->noise);
    free(ds->noise_n);
    memset(ds, 0, sizeof *ds);
}

/* ==== Split lists ==== */

struct name_set {
    char **v;
    size_t n;
};

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void name_set_read(struct name_set *s, const char *path) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (s->n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nv = realloc(s->v, cap * sizeof *nv);
            if (!nv)
                break;
            s->v = nv;
        }
        s->v[s->n] = strdup(line);
        if (s->v[s->n])
            s->n++;
    }
    fclose(f);
    if (s->n) /* an empty list file leaves s->v NULL, which qsort must not get */
        qsort(s->v, s->n, sizeof *s->v, cmp_str);
}

/* Reads root's validation_list.txt and testing_list.txt (empty when absent). */
static void split_lists_read(const char *root, struct name_set *val, struct name_set *test) {
    char path[4096];
    snprintf(path, sizeof path, "%s/validation_list.txt", root);
    name_set_read(val, path);
    snprintf(path, sizeof path, "%s/testing_list.txt", root);
    name_set_read(test, path);
}

static int name_set_has(const struct name_set *s, const char *name) {
    return s->n && bsearch(&name, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

static void name_set_free(struct name_set *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* ==== Loading ==== */

static int has_audio_ext(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot && (!strcasecmp(dot, ".wav") || !strcasecmp(dot, ".flac") ||
                   !strcasecmp(dot, ".ogg") || !strcasecmp(dot, ".opus"));
}

/* Whether a folder entry is one of the kind listed: an audio file (dirs 0)
 * or a sub-folder (dirs 1). */
static int entry_wanted(const char *dir, const char *name, int dirs) {
    if (name[0] == '.')
        return 0;
    if (!dirs)
        return has_audio_ext(name);
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Sorted names of a folder's audio files (dirs 0) or sub-folders (dirs 1);
 * *out is malloc'd (free each and it). */
static size_t list_entries(const char *dir, int dirs, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!entry_wanted(dir, e->d_name, dirs))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nv = realloc(*out, cap * sizeof *nv);
            if (!nv)
                break;
            *out = nv;
        }
        (*out)[n] = strdup(e->d_name);
        if ((*out)[n])
            n++;
    }
    closedir(d);
    if (n)
        qsort(*out, n, sizeof **out, cmp_str);
    return n;
}

static size_t list_dir(const char *dir, char ***out) {
    return list_entries(dir, 0, out);
}

size_t dataset__list_sounds(const char *dir, char ***out) {
    return list_entries(dir, 0, out);
}

size_t dataset__list_dirs(const char *dir, char ***out) {
    return list_entries(dir, 1, out);
}

/* Energy of 10 ms frame f of x (hop samples per frame). */
static double frame_energy(const float *x, int f, int hop) {
    double e = 0.0;
    for (int k = 0; k < hop; k++)
        e += (double)x[f * hop + k] * x[f * hop + k];
    return e;
}

/* A run of frames over the word's threshold (dataset_find_word). */
struct word_run {
    int a, b; /* its first and last frame */
    double e; /* its energy, the quieter frames it bridges included */
};

/* Whether run r, `pause` quieter frames away from the word, is a part of it
 * said after a pause: long enough to be a syllable, and loud enough beside
 * the word's loudest run (energy word_e). */
static int pause_joins(const struct word_run *r, int pause, int max_pause, double word_e) {
    return pause <= max_pause && (r->b - r->a + 1) * 10 >= DATASET_PAUSE_RUN_MS &&
           r->e >= word_e * DATASET_PAUSE_SHARE;
}

void dataset_find_word(const float *x, int32_t n, int rate, float range_db, int max_gap_ms,
                       int max_pause_ms, int32_t *on, int32_t *off) {
    int hop = rate / 100;
    int nf = hop > 0 ? n / hop : 0;
    *on = 0;
    *off = n;
    if (nf < 1)
        return;
    double emax = 0.0;
    int peak = 0;
    for (int f = 0; f < nf; f++) {
        double e = frame_energy(x, f, hop);
        if (e > emax) {
            emax = e;
            peak = f;
        }
    }
    if (emax <= 0.0)
        return;
    double thr = emax * pow(10.0, -(double)range_db / 10.0);
    int first = peak, last = peak;
    if (max_gap_ms <= 0) {
        for (int f = 0; f < nf; f++)
            if (frame_energy(x, f, hop) >= thr) {
                if (f < first)
                    first = f;
                if (f > last)
                    last = f;
            }
        *on = first * hop;
        *off = (last + 1) * hop;
        return;
    }
    /* runs of frames over thr, joined across at most gap quieter frames (a
     * run and its gap take two frames at least, so nf / 2 + 1 of them) */
    int gap = max_gap_ms / 10, n_run = 0, a = -1, b = -1;
    struct word_run *run = malloc(((size_t)nf / 2 + 1) * sizeof *run);
    if (!run)
        return; /* the whole of x */
    double run_e = 0.0;
    for (int f = 0; f <= nf; f++) {
        double e = f < nf ? frame_energy(x, f, hop) : 0.0;
        int over = f < nf && e >= thr;
        if (a >= 0 && (f == nf || (!over && f - b > gap))) {
            run[n_run++] = (struct word_run){a, b, run_e};
            a = -1;
        }
        if (over) {
            if (a < 0) {
                a = f;
                run_e = 0.0;
            }
            b = f;
        }
        if (a >= 0)
            run_e += e;
    }
    /* the word is the run with the most energy (a click is loud but short),
     * and the runs beside it that pause_joins (a word said in two parts) */
    int best = 0;
    for (int i = 1; i < n_run; i++)
        if (run[i].e > run[best].e)
            best = i;
    int lo = best, hi = best, pause = max_pause_ms / 10;
    for (int grew = 1; grew;) {
        grew = 0;
        if (lo > 0 &&
            pause_joins(&run[lo - 1], run[lo].a - run[lo - 1].b - 1, pause, run[best].e)) {
            lo--;
            grew = 1;
        }
        if (hi + 1 < n_run &&
            pause_joins(&run[hi + 1], run[hi + 1].a - run[hi].b - 1, pause, run[best].e)) {
            hi++;
            grew = 1;
        }
    }
    *on = run[lo].a * hop;
    *off = (run[hi].b + 1) * hop;
    free(run);
}

static int add_noise_buf(struct dataset *ds, float *x, int32_t n) {
    float **nv = realloc(ds->noise, (ds->n_noise + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    ds->noise = nv;
    int32_t *nn = realloc(ds->noise_n, (ds->n_noise + 1) * sizeof *nn);
    if (!nn)
        return -ENOMEM;
    ds->noise_n = nn;
    float *c = malloc((size_t)n * sizeof *c);
    if (!c)
        return -ENOMEM;
    memcpy(c, x, (size_t)n * sizeof *c);
    ds->noise[ds->n_noise] = c;
    ds->noise_n[ds->n_noise] = n;
    ds->n_noise++;
    return 0;
}

/* Appends the sound files of root/sub as clips of class label (not yet
 * decoded): named "sub/file", split by the list files (or force_split >= 0). */
static int add_folder(struct dataset *ds, const char *root, const char *sub, int label, int source,
                      int negative, int force_split, const struct name_set *val,
                      const struct name_set *test) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    char **names;
    size_t n = list_dir(path, &names);
    int rc = 0;
    if (ds->n_clips + n > ds->cap) {
        size_t cap = ds->cap ? ds->cap : 1024;
        while (cap < ds->n_clips + n)
            cap *= 2;
        struct ds_clip *nc = realloc(ds->clips, cap * sizeof *nc);
        if (!nc) {
            rc = -ENOMEM;
        } else {
            ds->clips = nc;
            ds->cap = cap;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!rc) {
            struct ds_clip *cl = &ds->clips[ds->n_clips++];
            memset(cl, 0, sizeof *cl);
            snprintf(cl->name, sizeof cl->name, "%s/%s", sub, names[i]);
            cl->label = (int16_t)label;
            cl->source = (int8_t)source;
            cl->negative = (int8_t)negative;
            if (force_split >= 0)
                cl->split = (int8_t)force_split;
            else
                cl->split = name_set_has(test, cl->name)  ? DS_TEST
                            : name_set_has(val, cl->name) ? DS_VAL
                                                          : DS_TRAIN;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Decodes clips first..n_clips of root at ds->rate and finds their words;
 * training-split silence clips also become background noise. */
static int decode_clips(struct dataset *ds, const char *root, size_t first, char *msg,
                        size_t msglen) {
    if (ds->n_clips == first) {
        snprintf(msg, msglen, "%s: no clips in any label folder", root);
        return KWS_EDATASET;
    }
    int err = 0;
    size_t bad = 0;
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = first; i < ds->n_clips; i++) {
        struct ds_clip *cl = &ds->clips[i];
        char p[4096], m[256];
        snprintf(p, sizeof p, "%s/%s", root, cl->name);
        float *x = NULL;
        size_t n = 0;
        int r = audio_file_read(p, ds->rate, &x, &n, NULL, m, sizeof m);
        if (r < 0 || n == 0 || n > INT32_MAX) {
#pragma omp critical(ds_err)
            {
                if (!err) {
                    err = r < 0 ? r : KWS_EDATASET;
                    bad = i;
                }
            }
            free(x);
            continue;
        }
        cl->x = x;
        cl->n = (int32_t)n;
        if (cl->label == ds->sil_class) {
            cl->on = 0;
            cl->off = cl->n;
        } else {
            dataset_find_word(x, cl->n, ds->rate, DATASET_WORD_DB, 0, 0, &cl->on, &cl->off);
        }
    }
    if (err) {
        snprintf(msg, msglen, "%s/%s: cannot read (%s)", root, ds->clips[bad].name,
                 kws_strerror(err));
        return err;
    }
    for (size_t i = first; i < ds->n_clips; i++) {
        struct ds_clip *cl = &ds->clips[i];
        if (cl->label == ds->sil_class && cl->split == DS_TRAIN && add_noise_buf(ds, cl->x, cl->n))
            return -ENOMEM;
    }
    return 0;
}

int dataset_load(struct dataset *ds, const char *root, int force_split, char *msg, size_t msglen) {
    struct name_set val, test;
    split_lists_read(root, &val, &test);
    size_t first = ds->n_clips;
    int source = ds->n_sources++;
    int rc = 0;
    for (int c = 0; c < ds->n_classes && !rc; c++)
        rc = add_folder(ds, root, ds->labels[c], c, source, 0, force_split, &val, &test);
    name_set_free(&val);
    name_set_free(&test);
    if (rc) {
        snprintf(msg, msglen, "%s: out of memory", root);
        return rc;
    }
    return decode_clips(ds, root, first, msg, msglen);
}

int dataset_load_negatives(struct dataset *ds, const char *root, int force_split, char *msg,
                           size_t msglen) {
    if (ds->unk_class < 0) {
        snprintf(msg, msglen, "%s: negatives need an _unknown_ label", root);
        return KWS_EBADFIELD;
    }
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, msglen, "%s: not a folder", root);
        return -ENOENT;
    }
    struct name_set val, test;
    split_lists_read(root, &val, &test);
    if (force_split < 0 && !val.n && !test.n)
        force_split = DS_TRAIN;
    size_t first = ds->n_clips;
    int source = ds->n_sources++;
    char **subs;
    size_t n_sub = list_entries(root, 1, &subs);
    int rc = 0;
    for (size_t k = 0; k < n_sub; k++) {
        if (!rc)
            rc = add_folder(ds, root, subs[k], ds->unk_class, source, 1, force_split, &val, &test);
        free(subs[k]);
    }
    free(subs);
    name_set_free(&val);
    name_set_free(&test);
    if (rc) {
        snprintf(msg, msglen, "%s: out of memory", root);
        return rc;
    }
    if (!n_sub) {
        snprintf(msg, msglen, "%s: no word folders", root);
        return KWS_EDATASET;
    }
    return decode_clips(ds, root, first, msg, msglen);
}

int dataset_add_noise(struct dataset *ds, const char *dir, char *msg, size_t msglen) {
    char **names;
    size_t n = list_dir(dir, &names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        float *x = NULL;
        size_t len = 0;
        if (!rc && audio_file_read(p, ds->rate, &x, &len, NULL, msg, msglen) == 0 && len > 0)
            rc = add_noise_buf(ds, x, (int32_t)len);
        free(x);
        free(names[i]);
    }
    free(names);
    if (!rc && n == 0) {
        snprintf(msg, msglen, "%s: no sound files", dir);
        return KWS_EDATASET;
    }
    return rc;
}

size_t dataset_split(const struct dataset *ds, int split, int source, size_t *idx) {
    size_t k = 0;
    for (size_t i = 0; i < ds->n_clips; i++) {
        if (split >= 0 && ds->clips[i].split != split)
            continue;
        if (source >= 0 && ds->clips[i].source != source)
            continue;
        if (idx)
            idx[k] = i;
        k++;
    }
    return k;
}

/* ==== Rendering ==== */

int dataset_features(struct audio_fe *fe, const float *x, size_t n, int T, float *spikes) {
    size_t got = audio_fe_compute(fe, x, n, NULL, spikes, (size_t)T);
    if (got < (size_t)T)
        memset(spikes + got * fe->n_out, 0, ((size_t)T - got) * fe->n_out * sizeof(float));
    return got < (size_t)T ? (int)got : T;
}

/* Adds clip cl into buf (ns samples) at gain g and speed factor r (output
 * sample k reads input position k * r), its sample 0 landing at pos. */
static void place_word(float *buf, long ns, const struct ds_clip *cl, long pos, float g, float r) {
    long n_out = (long)((float)cl->n / r);
    for (long k = 0; k < n_out; k++) {
        long j = pos + k;
        if (j < 0 || j >= ns)
            continue;
        float src = (float)k * r;
        long i0 = (long)src;
        float fr = src - (float)i0;
        float a = cl->x[i0 < cl->n ? i0 : cl->n - 1];
        float b = cl->x[i0 + 1 < cl->n ? i0 + 1 : cl->n - 1];
        buf[j] += g * (a + fr * (b - a));
    }
}

/* Adds one of ds's noise recordings (drawn), from a drawn place and looped,
 * to buf (ns samples) at an SNR drawn from aug's range against level wr. */
static void mix_noise(const struct dataset *ds, float *buf, size_t ns, float wr,
                      const struct ds_aug *aug, struct train_rng *rng) {
    size_t k = (size_t)(train_rng_uniform(rng) * (float)ds->n_noise) % ds->n_noise;
    const float *nx = ds->noise[k];
    size_t nn = (size_t)ds->noise_n[k];
    float nr = train__rms(nx, 0, (int32_t)nn);
    float snr = aug->snr_db_lo + (aug->snr_db_hi - aug->snr_db_lo) * train_rng_uniform(rng);
    float ng = nr > 0.0f ? wr / nr * powf(10.0f, -snr / 20.0f) : 0.0f;
    size_t off = (size_t)(train_rng_uniform(rng) * (float)nn);
    for (size_t j = 0; j < ns; j++)
        buf[j] += ng * nx[(off + j) % nn];
}

static float draw_gain(struct train_rng *rng, float lo_db, float hi_db) {
    return powf(10.0f, (lo_db + (hi_db - lo_db) * train_rng_uniform(rng)) / 20.0f);
}

/* A random training-split word clip other than i (silence excluded), or -1. */
static long draw_context_clip(const struct dataset *ds, size_t i, struct train_rng *rng) {
    for (int tries = 0; tries < 64; tries++) {
        size_t k = (size_t)(train_rng_uniform(rng) * (float)ds->n_clips) % ds->n_clips;
        const struct ds_clip *c = &ds->clips[k];
        if (k != i && c->split == DS_TRAIN && c->label != ds->sil_class)
            return (long)k;
    }
    return -1;
}

/* A random span of U{0..wmax} adjacent items out of n: its start, and its
 * width in *w. */
static int draw_span(struct train_rng *rng, int wmax, int n, int *w) {
    int k = (int)(train_rng_uniform(rng) * (float)(wmax + 1));
    k = k > n ? n : k;
    int s = (int)(train_rng_uniform(rng) * (float)(n - k + 1));
    *w = k;
    return s > n - k ? n - k : s;
}

/* SpecAugment (Park et al. 2019) applied to the spike code: a masked band or
 * frame emits no spikes, as a feature below the lowest encoder threshold. */
static void mask_spikes(float *spikes, int T, int F, int L, const struct ds_aug *aug,
                        struct train_rng *rng) {
    int w;
    for (int m = 0; m < aug->fmask_n; m++) {
        int f0 = draw_span(rng, aug->fmask_w, F, &w);
        for (int t = 0; t < T; t++)
            memset(spikes + ((size_t)t * F + f0) * L, 0, (size_t)w * L * sizeof *spikes);
    }
    for (int m = 0; m < aug->tmask_n; m++) {
        int t0 = draw_span(rng, aug->tmask_w, T, &w);
        memset(spikes + (size_t)t0 * F * L, 0, (size_t)w * F * L * sizeof *spikes);
    }
}

/* With probability aug->p_reverb, puts buf (ns samples at rate, speech
 * before its noise) in a room drawn from aug's ranges. 0 or -ENOMEM. */
static int reverb(float *buf, size_t ns, int rate, const struct ds_aug *aug,
                  struct train_rng *rng) {
    if (!(aug->p_reverb > 0.0f) || train_rng_uniform(rng) >= aug->p_reverb)
        return 0;
    struct room rm;
    rm.rt60 = aug->rt60_lo + (aug->rt60_hi - aug->rt60_lo) * train_rng_uniform(rng);
    rm.drr_db = aug->drr_db_lo + (aug->drr_db_hi - aug->drr_db_lo) * train_rng_uniform(rng);
    rm.seed = train_rng_next(rng);
    return room_reverb(buf, ns, rate, &rm);
}

/* Applies the window-wide augmentation of aug to buf: a spectral tilt and a
 * hiss floor (see struct ds_aug). */
static void tilt_and_floor(float *buf, size_t ns, const struct ds_aug *aug, struct train_rng *rng,
                           uint64_t stream) {
    if (aug->tilt > 0.0f) {
        float a = aug->tilt * (2.0f * train_rng_uniform(rng) - 1.0f);
        float norm = 1.0f / (1.0f + fabsf(a)), prev = 0.0f;
        for (size_t k = 0; k < ns; k++) {
            float cur = buf[k];
            buf[k] = (cur - a * prev) * norm;
            prev = cur;
        }
    }
    if (aug->floor_p > 0.0f && train_rng_uniform(rng) < aug->floor_p) {
        float db =
            aug->floor_db_lo + (aug->floor_db_hi - aug->floor_db_lo) * train_rng_uniform(rng);
        float a = sqrtf(3.0f) * powf(10.0f, db / 20.0f);
        struct train_rng wn;
        train_rng_seed(&wn, train_rng_next(rng), stream);
        for (size_t k = 0; k < ns; k++)
            buf[k] += a * (2.0f * train_rng_uniform(&wn) - 1.0f);
    }
}

/* The end of a render: clips buf (ns samples) to full scale, runs the front
 * end over it from rest into sp (nf frames), copies the T frames after the
 * warm-up to spikes and applies SpecAugment. */
static void finish_render(float *buf, size_t ns, struct audio_fe *fe, float *sp, int nf, int warm,
                          int T, float *spikes, const struct ds_aug *aug, struct train_rng *rng) {
    for (size_t k = 0; k < ns; k++)
        buf[k] = buf[k] > 0.999f ? 0.999f : buf[k] < -0.999f ? -0.999f : buf[k];
    audio_fe_reset(fe);
    size_t got = audio_fe_compute(fe, buf, ns, NULL, sp, (size_t)nf);
    if (got < (size_t)nf)
        memset(sp + got * fe->n_out, 0, ((size_t)nf - got) * fe->n_out * sizeof(float));
    memcpy(spikes, sp + (size_t)warm * fe->n_out, (size_t)T * fe->n_out * sizeof(float));
    mask_spikes(spikes, T, fe->cfg.n_mels, fe->cfg.enc_levels, aug, rng);
}

int dataset_render(const struct dataset *ds, size_t i, const struct ds_aug *aug, uint64_t seed,
                   struct audio_fe *fe, int T, float *spikes, float *bg) {
    const struct ds_clip *cl = &ds->clips[i];
    int hop = fe->cfg.hop, warm = aug->warm_frames, nf = warm + T;
    int ctx = aug->ctx_frames > 0 && aug->ctx_frames < T ? aug->ctx_frames : 0;
    int Tm = T - ctx; /* frames of the main window, after the context */
    size_t ns = (size_t)nf * hop;
    float *buf = calloc(ns, sizeof *buf);
    float *sp = malloc((size_t)nf * fe->n_out * sizeof *sp);
    if (!buf || !sp) {
        free(buf);
        free(sp);
        return -ENOMEM;
    }
    struct train_rng rng;
    train_rng_seed(&rng, seed, (uint64_t)i);
    int is_sil = cl->label == ds->sil_class;
    int on_f = 0, off_f = -1;
    float wr = 0.0f;    /* level of the main word, for the noise SNR */
    long pos_main = -1; /* where the main clip's sample 0 lands in buf */
    if (is_sil) {
        /* the clip is the background: loop it over the whole window */
        float g = draw_gain(&rng, aug->sil_db_lo, aug->sil_db_hi);
        size_t off = (size_t)(train_rng_uniform(&rng) * (float)cl->n);
        for (size_t k = 0; k < ns; k++)
            buf[k] = g * cl->x[(off + k) % (size_t)cl->n];
    } else {
        float g = draw_gain(&rng, aug->gain_db_lo, aug->gain_db_hi);
        long shift = (long)((2.0f * train_rng_uniform(&rng) - 1.0f) * aug->shift_ms * 1e-3f *
                            (float)ds->rate);
        float r = 1.0f;
        if (aug->speed_hi > 0.0f && aug->speed_hi != aug->speed_lo)
            r = aug->speed_lo + (aug->speed_hi - aug->speed_lo) * train_rng_uniform(&rng);
        long w_on = (long)((float)cl->on / r), w_off = (long)((float)cl->off / r);
        long win0 = (long)(warm + ctx) * hop;
        long pos; /* where clip sample 0 lands in buf */
        if (aug->center)
            pos = win0 + (long)Tm * hop / 2 - (w_on + w_off) / 2 + shift;
        else
            pos = win0 + shift;
        place_word(buf, (long)ns, cl, pos, g, r);
        pos_main = pos;
        if (aug->trim_ms > 0.0f && train_rng_uniform(&rng) < 0.5f) {
            /* mute the word's onset: everything before on + cut, then a 5 ms fade-in */
            long cut =
                w_on + (long)(train_rng_uniform(&rng) * aug->trim_ms * 1e-3f * (float)ds->rate);
            long fade = (long)ds->rate / 200;
            for (long k = pos < 0 ? -pos : 0; k < cut + fade && pos + k < (long)ns; k++)
                buf[pos + k] *= k < cut ? 0.0f : (float)(k - cut) / (float)fade;
        }
        on_f = (int)((pos + w_on) / hop) - warm;
        off_f = (int)((pos + w_off) / hop) - warm;
        wr = g * train__rms(cl->x, cl->on, cl->off);
    }
    /* another word in front of the main window: the stream the network runs
     * on in the daemon is never reset between words */
    int con_f = 0, coff_f = -1;
    long ck = -1;
    if (ctx && train_rng_uniform(&rng) < aug->p_ctx_word)
        ck = draw_context_clip(ds, i, &rng);
    if (ck >= 0) {
        const struct ds_clip *cc = &ds->clips[ck];
        float g = draw_gain(&rng, aug->gain_db_lo, aug->gain_db_hi);
        /* its end lands in the second half of the context, at least 100 ms
         * before the main word starts */
        int end_f = ctx / 2 + (int)(train_rng_uniform(&rng) * (float)(ctx / 2));
        if (!is_sil && end_f > on_f - 10)
            end_f = on_f - 10;
        long pos = (long)(warm + end_f) * hop - cc->off;
        place_word(buf, (long)ns, cc, pos, g, 1.0f);
        con_f = (int)((pos + cc->on) / hop) - warm;
        coff_f = (int)((pos + cc->off) / hop) - warm;
        if (is_sil)
            wr = g * train__rms(cc->x, cc->on, cc->off);
    }
    if (!is_sil && reverb(buf, ns, ds->rate, aug, &rng) < 0) {
        free(buf);
        free(sp);
        return -ENOMEM;
    }
    if (wr > 0.0f && ds->n_noise && train_rng_uniform(&rng) < aug->p_noise)
        mix_noise(ds, buf, ns, wr, aug, &rng);
    if (ctx && train_rng_uniform(&rng) < aug->p_ctx_cold) {
        /* a cold start: nothing before the window (the word's own lead-in stays) */
        size_t z = (size_t)(warm + ctx) * (size_t)hop;
        if (!is_sil && pos_main > 0 && (size_t)pos_main < z)
            z = (size_t)pos_main;
        memset(buf, 0, (z < ns ? z : ns) * sizeof *buf);
        ck = -1;
    }
    tilt_and_floor(buf, ns, aug, &rng, (uint64_t)i);
    finish_render(buf, ns, fe, sp, nf, warm, T, spikes, aug, &rng);
    if (bg)
        for (int t = 0; t < T; t++) {
            int in_ctx = ck >= 0 && t >= con_f - 3 && t <= coff_f + aug->hold_frames;
            if (!is_sil && t >= off_f && t <= off_f + aug->hold_frames)
                bg[t] = -1.0f;
            else if (in_ctx || (!is_sil && t >= on_f - 3 && t < off_f))
                bg[t] = 0.0f;
            else
                bg[t] = 1.0f;
        }
    free(buf);
    free(sp);
    return 0;
}

/* ==== Stream windows ==== */

void dataset_window_default(struct ds_window *w) {
    memset(w, 0, sizeof *w);
    w->T = 300;
    w->lead = 50;
    w->gap_lo_ms = 100.0f;
    w->gap_hi_ms = 800.0f;
    w->p_keyword = 0.5f;
    w->p_negative = 0.5f;
    w->peak_before = 10;
    w->peak_after = 40;
}

static size_t draw_from(const size_t *pool, size_t n, struct train_rng *rng) {
    return pool[(size_t)(train_rng_uniform(rng) * (float)n) % n];
}

struct win_item {
    int label; /* keyword class, or -1 */
    int on_f, off_f;
};

int dataset_render_window(const struct dataset *ds, const struct ds_window *w,
                          const struct ds_aug *aug, uint64_t seed, uint64_t stream,
                          struct audio_fe *fe, float *spikes, int16_t *ftgt) {
    if (!w->n_kw)
        return KWS_EDATASET;
    int hop = fe->cfg.hop, warm = aug->warm_frames, T = w->T, nf = warm + T;
    size_t ns = (size_t)nf * hop;
    float *buf = calloc(ns, sizeof *buf);
    float *sp = malloc((size_t)nf * fe->n_out * sizeof *sp);
    enum { MAX_ITEMS = 64 };
    struct win_item items[MAX_ITEMS];
    int n_items = 0;
    if (!buf || !sp) {
        free(buf);
        free(sp);
        return -ENOMEM;
    }
    struct train_rng rng;
    train_rng_seed(&rng, seed, stream);
    float gap_lo = w->gap_lo_ms * 1e-3f * (float)ds->rate;
    float gap_hi = w->gap_hi_ms * 1e-3f * (float)ds->rate;
    /* the first item may start before the window: a stream has no beginning */
    long cur = (long)(train_rng_uniform(&rng) * (float)(warm + T / 2) * (float)hop);
    double lvl = 0.0;
    int n_lvl = 0;
    while (cur < (long)ns && n_items < MAX_ITEMS) {
        size_t k;
        int is_kw = train_rng_uniform(&rng) < w->p_keyword || (!w->n_unk && !w->n_neg);
        if (is_kw)
            k = draw_from(w->kw, w->n_kw, &rng);
        else if (w->n_neg && (!w->n_unk || train_rng_uniform(&rng) < w->p_negative))
            k = w->n_hard && train_rng_uniform(&rng) < w->p_hard
                    ? draw_from(w->hard, w->n_hard, &rng)
                    : draw_from(w->neg, w->n_neg, &rng);
        else
            k = draw_from(w->unk, w->n_unk, &rng);
        const struct ds_clip *cl = &ds->clips[k];
        float g = draw_gain(&rng, aug->gain_db_lo, aug->gain_db_hi);
        float r = 1.0f;
        if (aug->speed_hi > 0.0f && aug->speed_hi != aug->speed_lo)
            r = aug->speed_lo + (aug->speed_hi - aug->speed_lo) * train_rng_uniform(&rng);
        long w_on = (long)((float)cl->on / r), w_off = (long)((float)cl->off / r);
        long pos = cur - w_on;
        place_word(buf, (long)ns, cl, pos, g, r);
        struct win_item *it = &items[n_items++];
        it->label = is_kw ? cl->label : -1;
        it->on_f = (int)((pos + w_on) / hop) - warm;
        it->off_f = (int)((pos + w_off) / hop) - warm;
        lvl += g * train__rms(cl->x, cl->on, cl->off);
        n_lvl++;
        cur = pos + w_off + (long)(gap_lo + (gap_hi - gap_lo) * train_rng_uniform(&rng));
    }
    if (reverb(buf, ns, ds->rate, aug, &rng) < 0) {
        free(buf);
        free(sp);
        return -ENOMEM;
    }
    int cold = w->p_cold > 0.0f && train_rng_uniform(&rng) < w->p_cold;
    if (ds->n_noise && !cold) /* under the whole window, against the items' mean level */
        mix_noise(ds, buf, ns, n_lvl ? (float)(lvl / n_lvl) : 0.0f, aug, &rng);
    if (!cold)
        tilt_and_floor(buf, ns, aug, &rng, stream);
    finish_render(buf, ns, fe, sp, nf, warm, T, spikes, aug, &rng);
    for (int t = 0; t < T; t++)
        ftgt[t] = TRAIN_FT_FILL;
    for (int i = 0; i < n_items; i++) {
        const struct win_item *it = &items[i];
        if (it->label < 0)
            continue;
        int a = it->on_f - 3, p0 = it->off_f - w->peak_before, p1 = it->off_f + w->peak_after;
        if (i + 1 < n_items && p1 > items[i + 1].on_f - 1)
            p1 = items[i + 1].on_f - 1;
        int whole = p0 >= w->lead && it->off_f + w->peak_after < T;
        for (int t = a < 0 ? 0 : a; t <= p1 && t < T; t++)
            ftgt[t] = !whole   ? TRAIN_FT_NONE
                      : t < p0 ? (int16_t)it->label
                               : (int16_t)(it->label | TRAIN_FT_PEAK);
    }
    for (int t = 0; t < w->lead && t < T; t++)
        ftgt[t] = TRAIN_FT_NONE;
    free(buf);
    free(sp);
    return 0;
}
