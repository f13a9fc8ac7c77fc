/* kwsd-bench.c: conv-delay vs dense DelRec recurrence, timed on this machine.
 *
 * Builds the paper's SHD topology (160 spike-count inputs, Linear-LIF 256,
 * Linear + recurrent LIF 256 with delays uniform in [0, 30], d_max 32,
 * leaky readout of 12 classes) three times: conv-delay K = 3, conv-delay
 * K = 5 and dense DelRec. Weights are random; biases are calibrated so each
 * hidden layer fires at the same target rate in every variant, so the
 * variants do the same amount of spike work. It then times, interleaving the
 * variants repetition by repetition and reporting medians:
 *   - the recurrent layer alone (ring read + spike scatter) fed one fixed
 *     spike raster, in kwsd's event-driven form and in the training-time
 *     form of the paper's code (a (C, L) buffer, one-hot delay mask Y, then
 *     X = W Y, i.e. C^2 L MACs per step, or conv1d(Y), K C L MACs per step);
 *   - the whole network per frame in three forms: event-driven snn_step;
 *     the naive step (dense matrix-vector products everywhere, the conv
 *     kernel expanded to a C x C matrix); and the training-time form (dense
 *     Linear layers plus the (C, L) recurrence above), with B = 1.
 * The ratios dense / conv are what the paper's "52x faster inference" can be
 * compared against (docs/BENCHMARKS.md).
 *
 *     kwsd-bench [--json] [--reps N] [--ms M] [--in-rate P] [--hidden-rate P] [--seed S] [--quick]
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kws/err.h"
#include "kws/snn.h"
#include "snn_internal.h"

#define N_IN 160
#define N_HID 256
#define N_CLASSES 12
#define D_MAX 32
#define DELAY_HI 30
#define N_FRAMES 512 /* distinct input frames, cycled */

enum { V_CONV3, V_CONV5, V_DENSE, N_VARIANTS };
static const char *const variant_name[N_VARIANTS] = {"conv3", "conv5", "dense"};

struct opts {
    bool json, quick;
    int reps;
    double ms;          /* target duration of one timed run */
    double in_rate;     /* fraction of input channels with a non-zero count per frame */
    double hidden_rate; /* target firing rate of each hidden layer */
    uint64_t seed;
};

/* ==== Small helpers ==== */

static uint64_t rng_s;

static uint32_t rng_u32(void) {
    rng_s ^= rng_s >> 12;
    rng_s ^= rng_s << 25;
    rng_s ^= rng_s >> 27;
    return (uint32_t)((rng_s * 2685821657736338717ull) >> 32);
}

static double rng_unit(void) {
    return (rng_u32() + 0.5) / 4294967296.0;
}

static float rng_sym(double lim) {
    return (float)((2.0 * rng_unit() - 1.0) * lim);
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of v (n values), linear between order statistics. */
static double quantile(const double *v, int n, double q) {
    double *c = malloc((size_t)n * sizeof *c);
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double pos = q * (n - 1);
    int i = (int)pos;
    double m = i + 1 < n ? c[i] + (pos - i) * (c[i + 1] - c[i]) : c[i];
    free(c);
    return m;
}

static double median(const double *v, int n) {
    return quantile(v, n, 0.5);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "kwsd-bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* ==== The training-time form (the paper's code, B = 1) ==== */

/* One recurrent layer as the paper's training code runs it: buffer R (C, L),
 * L = D; each step reads and clears column p, builds Y (C, L) with
 * Y[j][1 + d_j] = s_j, computes X = W Y or conv1d(Y) over every column, and
 * adds columns 1..L-1 of X into R. Every MAC is done whatever the spikes. */
struct torch_rec {
    int rec, k, n, L, p;
    const float *w;   /* conv (K) or dense (C, C) */
    const int32_t *d; /* (C) integer delays */
    float *R, *Y, *X; /* (C, L) each */
};

static void torch_rec_init(struct torch_rec *t, const struct snn_model *m, int l) {
    const struct snn_layer_cfg *lc = &m->cfg.layer[l];
    t->rec = lc->rec;
    t->k = lc->k;
    t->n = lc->n;
    t->L = snn_layer_ring_len(lc);
    t->p = 0;
    t->w = m->p.w_rec[l];
    t->d = m->delay_int[l];
    t->R = xcalloc((size_t)t->n * (size_t)t->L, sizeof(float));
    t->Y = xcalloc((size_t)t->n * (size_t)t->L, sizeof(float));
    t->X = xcalloc((size_t)t->n * (size_t)t->L, sizeof(float));
}

static void torch_rec_free(struct torch_rec *t) {
    free(t->R);
    free(t->Y);
    free(t->X);
}

/* Adds this step's recurrent input into cur (C) and clears it. */
static void torch_rec_read(struct torch_rec *t, float *cur) {
    const int n = t->n, L = t->L, p = t->p;
    for (int i = 0; i < n; i++) {
        cur[i] += t->R[i * L + p];
        t->R[i * L + p] = 0.0f;
    }
}

/* Pushes the spikes s (C, 0/1) of this step through the delay mask and W. */
static void torch_rec_push(struct torch_rec *t, const float *s) {
    const int n = t->n, L = t->L;
    float *restrict Y = t->Y, *restrict X = t->X;
    memset(Y, 0, (size_t)n * (size_t)L * sizeof(float));
    for (int j = 0; j < n; j++)
        Y[j * L + 1 + t->d[j]] = s[j];
    memset(X, 0, (size_t)n * (size_t)L * sizeof(float));
    if (t->rec == SNN_REC_DENSE) {
        for (int i = 0; i < n; i++) {
            float *restrict xi = X + (size_t)i * (size_t)L;
            const float *wi = t->w + (size_t)i * (size_t)n;
            for (int j = 0; j < n; j++) {
                const float w = wi[j];
                const float *restrict yj = Y + (size_t)j * (size_t)L;
                for (int l = 0; l < L; l++)
                    xi[l] += w * yj[l];
            }
        }
    } else {
        const int pad = (t->k - 1) / 2;
        for (int i = 0; i < n; i++) {
            float *restrict xi = X + (size_t)i * (size_t)L;
            for (int m = 0; m < t->k; m++) {
                int j = i + m - pad;
                if (j < 0 || j >= n)
                    continue;
                const float w = t->w[m];
                const float *restrict yj = Y + (size_t)j * (size_t)L;
                for (int l = 0; l < L; l++)
                    xi[l] += w * yj[l];
            }
        }
    }
    for (int i = 0; i < n; i++)
        for (int k = 1; k < L; k++) {
            int c = t->p + k;
            if (c >= L)
                c -= L;
            t->R[i * L + c] += X[i * L + k];
        }
    t->p = t->p + 1 == L ? 0 : t->p + 1;
}

/* The whole network in the training-time form: dense Linear layers, the
 * recurrence above, the readout; one frame. */
struct torch_net {
    const struct snn_model *m;
    struct torch_rec rec;
    float *v[2], *s[2], *cur, *v_out;
};

static void torch_net_init(struct torch_net *t, const struct snn_model *m) {
    t->m = m;
    torch_rec_init(&t->rec, m, 1);
    for (int l = 0; l < 2; l++) {
        t->v[l] = xcalloc(N_HID, sizeof(float));
        t->s[l] = xcalloc(N_HID, sizeof(float));
    }
    t->cur = xcalloc(N_HID, sizeof(float));
    t->v_out = xcalloc(N_CLASSES, sizeof(float));
}

static void torch_net_free(struct torch_net *t) {
    torch_rec_free(&t->rec);
    for (int l = 0; l < 2; l++) {
        free(t->v[l]);
        free(t->s[l]);
    }
    free(t->cur);
    free(t->v_out);
}

/* y (rows) = W (rows, cols) x + b, every MAC done. */
static void matvec(float *restrict y, const float *restrict W, const float *restrict x,
                   const float *restrict b, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const float *wr = W + (size_t)r * (size_t)cols;
        float acc = b[r];
        for (int c = 0; c < cols; c++)
            acc += wr[c] * x[c];
        y[r] = acc;
    }
}

static int lif(float *v, float *s, const float *cur, int n, const struct snn_layer_cfg *lc) {
    int ns = 0;
    for (int i = 0; i < n; i++) {
        float h = lc->beta * v[i] + lc->gain * cur[i];
        bool sp = h >= lc->thresh;
        s[i] = sp ? 1.0f : 0.0f;
        v[i] = sp ? (lc->reset == SNN_RESET_HARD ? 0.0f : h - lc->thresh) : h;
        ns += sp;
    }
    return ns;
}

static void torch_net_step(struct torch_net *t, const float *x, float *out) {
    const struct snn_model *m = t->m;
    matvec(t->cur, m->p.w_in[0], x, m->p.b_in[0], N_HID, N_IN);
    lif(t->v[0], t->s[0], t->cur, N_HID, &m->cfg.layer[0]);
    matvec(t->cur, m->p.w_in[1], t->s[0], m->p.b_in[1], N_HID, N_HID);
    torch_rec_read(&t->rec, t->cur);
    lif(t->v[1], t->s[1], t->cur, N_HID, &m->cfg.layer[1]);
    torch_rec_push(&t->rec, t->s[1]);
    float o[N_CLASSES];
    matvec(o, m->p.w_out, t->s[1], m->p.b_out, N_CLASSES, N_HID);
    for (int c = 0; c < N_CLASSES; c++)
        t->v_out[c] = m->cfg.out_beta * t->v_out[c] + m->cfg.out_gain * o[c];
    if (out)
        memcpy(out, t->v_out, sizeof o);
}

/* ==== Models ==== */

static struct snn_cfg make_cfg(int variant) {
    struct snn_cfg c;
    memset(&c, 0, sizeof c);
    c.n_in = N_IN;
    c.n_layers = 2;
    /* First layer: SpikingJelly LIF, tau 1.05 (decay 1 - 1/1.05); recurrent
     * layer: the conv code's beta exp(-1/1.05); hard reset (SHD). */
    c.layer[0] = (struct snn_layer_cfg){N_HID, SNN_REC_NONE, 0, 0, 0.047619f, 1.0f, 1.0f, 0, 0, 0};
    c.layer[1] =
        (struct snn_layer_cfg){N_HID, SNN_REC_CONV, 3, D_MAX, 0.38583f, 1.0f, 1.0f, 0, 0, 0};
    if (variant == V_CONV5)
        c.layer[1].k = 5;
    if (variant == V_DENSE) {
        c.layer[1].rec = SNN_REC_DENSE;
        c.layer[1].k = 0;
    }
    c.n_classes = N_CLASSES;
    c.out_beta = 0.047619f;
    c.out_gain = 1.0f;
    for (int k = 0; k < N_CLASSES; k++)
        snprintf(c.labels[k], SNN_LABEL_LEN, "class%d", k);
    return c;
}

/* Same feed-forward weights and delays for every variant (the generator is
 * reseeded), recurrent weights of the variant's kind. */
static void fill_model(struct snn_model *m, uint64_t seed) {
    rng_s = seed;
    const double a_in = sqrt(6.0 / N_IN), a_hid = sqrt(6.0 / N_HID);
    for (int i = 0; i < N_HID * N_IN; i++)
        m->p.w_in[0][i] = rng_sym(a_in);
    for (int i = 0; i < N_HID * N_HID; i++)
        m->p.w_in[1][i] = rng_sym(a_hid);
    for (int j = 0; j < N_HID; j++)
        m->p.delay[1][j] = (float)(rng_u32() % (DELAY_HI + 1));
    for (int i = 0; i < N_CLASSES * N_HID; i++)
        m->p.w_out[i] = rng_sym(1.0 / sqrt(N_HID));
    const struct snn_layer_cfg *lc = &m->cfg.layer[1];
    if (lc->rec == SNN_REC_CONV)
        for (int t = 0; t < lc->k; t++)
            m->p.w_rec[1][t] = rng_sym(1.0 / sqrt(lc->k));
    else /* variance 1/C, like the orthogonal init */
        for (int i = 0; i < N_HID * N_HID; i++)
            m->p.w_rec[1][i] = rng_sym(sqrt(3.0 / N_HID));
    snn_model_prepare(m);
}

/* Firing rate of layer l over the first n frames, from a reset state. */
static double layer_rate(const struct snn_model *m, struct snn_state *s, const float *frames, int n,
                         int l) {
    long spikes = 0;
    snn_state_reset(s, m);
    for (int t = 0; t < n; t++) {
        snn_step(m, s, frames + (size_t)(t % N_FRAMES) * N_IN, NULL);
        spikes += s->n_idx[l];
    }
    return (double)spikes / ((double)n * m->cfg.layer[l].n);
}

/* Sets a common bias on layer l so that it fires at `rate` (bisection). */
static double calibrate(struct snn_model *m, struct snn_state *s, const float *frames, int l,
                        double rate) {
    double lo = -10.0, hi = 10.0, got = 0.0;
    for (int it = 0; it < 40; it++) {
        double mid = 0.5 * (lo + hi);
        for (int i = 0; i < m->cfg.layer[l].n; i++)
            m->p.b_in[l][i] = (float)mid;
        got = layer_rate(m, s, frames, 300, l);
        if (got < rate)
            lo = mid;
        else
            hi = mid;
    }
    return got;
}

/* ==== Timed runs ==== */

enum { K_LAYER_EVENT, K_LAYER_TORCH, K_NET_EVENT, K_NET_NAIVE, K_NET_TORCH, N_KINDS };
static const char *const kind_name[N_KINDS] = {"layer_event", "layer_torch", "net_event",
                                               "net_naive", "net_torch"};

struct bench {
    struct snn_model m[N_VARIANTS];
    struct snn_state s[N_VARIANTS], sn[N_VARIANTS], sl[N_VARIANTS];
    struct torch_net tn[N_VARIANTS];
    struct torch_rec tr[N_VARIANTS];
    float *frames;                 /* (N_FRAMES, N_IN) input spike counts */
    float *raster;                 /* (N_FRAMES, N_HID) 0/1 spikes fed to the layer-alone runs */
    int32_t *ridx;                 /* (N_FRAMES, N_HID) indices of the raster's spikes */
    int32_t *rn;                   /* (N_FRAMES) spikes per raster row */
    long pos[N_KINDS][N_VARIANTS]; /* frame counters, so runs continue the stream */
    int steps[N_KINDS][N_VARIANTS];
    float sink; /* keeps results live */
};

/* Runs `steps` steps of one kind and variant; returns ns per step. */
static double run(struct bench *b, int kind, int v, int steps) {
    const struct snn_model *m = &b->m[v];
    float cur[N_HID], out[N_CLASSES];
    long t0 = b->pos[kind][v];
    double start = now_ns();
    for (int k = 0; k < steps; k++) {
        long f = (t0 + k) % N_FRAMES;
        switch (kind) {
        case K_LAYER_EVENT: {
            struct snn_state *s = &b->sl[v];
            memset(cur, 0, sizeof cur);
            snn__ring_read(cur, s->ring[1] + (size_t)s->slot[1] * N_HID, N_HID);
            snn__scatter(m, 1, s->ring[1], s->slot[1], b->ridx + f * N_HID, b->rn[f]);
            s->slot[1] = s->slot[1] + 1 == D_MAX + 2 ? 0 : s->slot[1] + 1;
            b->sink += cur[f % N_HID];
            break;
        }
        case K_LAYER_TORCH:
            memset(cur, 0, sizeof cur);
            torch_rec_read(&b->tr[v], cur);
            torch_rec_push(&b->tr[v], b->raster + f * N_HID);
            b->sink += cur[f % N_HID];
            break;
        case K_NET_EVENT:
            snn_step(m, &b->s[v], b->frames + f * N_IN, out);
            b->sink += out[0];
            break;
        case K_NET_NAIVE:
            snn__step_naive(m, &b->sn[v], b->frames + f * N_IN, out);
            b->sink += out[0];
            break;
        case K_NET_TORCH:
            torch_net_step(&b->tn[v], b->frames + f * N_IN, out);
            b->sink += out[0];
            break;
        }
    }
    double ns = (now_ns() - start) / steps;
    b->pos[kind][v] = t0 + steps;
    return ns;
}

/* Checks that the forms compute the same thing: the layer-alone read values
 * of the event and training-time forms on the raster, and the readout of
 * the three whole-network forms, over 200 steps from reset. Returns the
 * largest absolute difference seen. */
static double verify(struct bench *b, int v) {
    const struct snn_model *m = &b->m[v];
    struct snn_state s, sn;
    struct torch_net tn;
    struct torch_rec tr;
    double worst = 0.0;
    snn_state_init(&s, m);
    snn_state_init(&sn, m);
    torch_net_init(&tn, m);
    torch_rec_init(&tr, m, 1);
    for (int f = 0; f < 200; f++) {
        float ce[N_HID] = {0}, ct[N_HID] = {0};
        snn__ring_read(ce, s.ring[1] + (size_t)s.slot[1] * N_HID, N_HID);
        snn__scatter(m, 1, s.ring[1], s.slot[1], b->ridx + f * N_HID, b->rn[f]);
        s.slot[1] = s.slot[1] + 1 == D_MAX + 2 ? 0 : s.slot[1] + 1;
        torch_rec_read(&tr, ct);
        torch_rec_push(&tr, b->raster + f * N_HID);
        for (int i = 0; i < N_HID; i++)
            worst = fmax(worst, fabs((double)ce[i] - ct[i]));
    }
    snn_state_reset(&s, m);
    for (int f = 0; f < 200; f++) {
        float oe[N_CLASSES], on[N_CLASSES], ot[N_CLASSES];
        snn_step(m, &s, b->frames + f * N_IN, oe);
        snn__step_naive(m, &sn, b->frames + f * N_IN, on);
        torch_net_step(&tn, b->frames + f * N_IN, ot);
        for (int c = 0; c < N_CLASSES; c++)
            worst = fmax(worst, fmax(fabs((double)oe[c] - on[c]), fabs((double)oe[c] - ot[c])));
    }
    snn_state_free(&s);
    snn_state_free(&sn);
    torch_net_free(&tn);
    torch_rec_free(&tr);
    return worst;
}

/* ==== Main ==== */

static void usage(void) {
    fprintf(stderr, "usage: kwsd-bench [--json] [--reps N] [--ms M] [--in-rate P] "
                    "[--hidden-rate P] [--seed S] [--quick]\n");
}

static bool parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, struct opts *o) {
    *o = (struct opts){.reps = 11, .ms = 40.0, .in_rate = 0.075, .hidden_rate = 0.10, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        double v;
        bool has = i + 1 < argc;
        if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
            o->reps = 3;
            o->ms = 2.0;
        } else if (!strcmp(a, "--reps") && has && parse_double(argv[++i], 1, 1001, &v)) {
            o->reps = (int)v;
        } else if (!strcmp(a, "--ms") && has && parse_double(argv[++i], 0.1, 10000, &v)) {
            o->ms = v;
        } else if (!strcmp(a, "--in-rate") && has && parse_double(argv[++i], 0.0, 1.0, &v)) {
            o->in_rate = v;
        } else if (!strcmp(a, "--hidden-rate") && has && parse_double(argv[++i], 0.001, 0.9, &v)) {
            o->hidden_rate = v;
        } else if (!strcmp(a, "--seed") && has && parse_double(argv[++i], 0, 1e15, &v)) {
            o->seed = (uint64_t)v;
        } else {
            usage();
            return -EINVAL;
        }
    }
    return 0;
}

/* What the report prints: the inputs' measured rates, the forms' agreement,
 * the parameter counts and the medians and ratios of the timed runs. */
struct results {
    double in_density;                 /* fraction of non-zero input counts */
    double rate0;                      /* layer 0 firing rate (same in every variant) */
    double rate1[N_VARIANTS];          /* layer 1 firing rate */
    double dev[N_VARIANTS];            /* largest difference between the forms (verify) */
    size_t rec_p[N_VARIANTS];          /* recurrent parameters */
    size_t all_p[N_VARIANTS];          /* all parameters */
    double med[N_KINDS][N_VARIANTS];   /* median ns per step */
    double ratio[N_KINDS][N_VARIANTS]; /* median of dense / this variant */
    double rq1[N_KINDS][N_VARIANTS];   /* its first quartile */
    double rq3[N_KINDS][N_VARIANTS];   /* its third quartile */
};

/* Fills b->frames: each channel non-zero with probability in_rate, count
 * 1..3. Returns the fraction of non-zero counts. */
static double make_frames(struct bench *b, const struct opts *o) {
    rng_s = o->seed * 7919 + 17;
    b->frames = xcalloc((size_t)N_FRAMES * N_IN, sizeof(float));
    long nz = 0;
    for (int i = 0; i < N_FRAMES * N_IN; i++)
        if (rng_unit() < o->in_rate) {
            b->frames[i] = (float)(1 + rng_u32() % 3);
            nz++;
        }
    return (double)nz / ((double)N_FRAMES * N_IN);
}

/* Builds each variant's model, calibrates its biases to the hidden rate and
 * sets up the states of every form; the rates reached go to r. Returns 0,
 * or -1 after printing why a model could not be made. */
static int build_models(struct bench *b, const struct opts *o, struct results *r) {
    for (int v = 0; v < N_VARIANTS; v++) {
        struct snn_cfg cfg = make_cfg(v);
        int rc = snn_model_init(&b->m[v], &cfg);
        if (rc < 0) {
            fprintf(stderr, "kwsd-bench: model: %s\n", kws_strerror(rc));
            return -1;
        }
        fill_model(&b->m[v], o->seed);
        snn_state_init(&b->s[v], &b->m[v]);
        /* The first layer is identical in every variant: calibrate it once. */
        if (v == 0)
            r->rate0 = calibrate(&b->m[v], &b->s[v], b->frames, 0, o->hidden_rate);
        else
            memcpy(b->m[v].p.b_in[0], b->m[0].p.b_in[0], N_HID * sizeof(float));
        r->rate1[v] = calibrate(&b->m[v], &b->s[v], b->frames, 1, o->hidden_rate);
        snn_state_reset(&b->s[v], &b->m[v]);
        snn_state_init(&b->sn[v], &b->m[v]);
        snn_state_init(&b->sl[v], &b->m[v]);
        torch_net_init(&b->tn[v], &b->m[v]);
        torch_rec_init(&b->tr[v], &b->m[v], 1);
        r->rec_p[v] = snn_rec_param_count(&b->m[v].cfg.layer[1]);
        r->all_p[v] = b->m[v].n_params;
    }
    return 0;
}

/* Fills the layer-alone raster: Bernoulli(hidden_rate) spikes, the same for
 * every variant. Returns nothing. */
static void make_raster(struct bench *b, const struct opts *o) {
    b->raster = xcalloc((size_t)N_FRAMES * N_HID, sizeof(float));
    b->ridx = xcalloc((size_t)N_FRAMES * N_HID, sizeof(int32_t));
    b->rn = xcalloc(N_FRAMES, sizeof(int32_t));
    for (int f = 0; f < N_FRAMES; f++)
        for (int j = 0; j < N_HID; j++)
            if (rng_unit() < o->hidden_rate) {
                b->raster[f * N_HID + j] = 1.0f;
                b->ridx[f * N_HID + b->rn[f]++] = j;
            }
}

/* Sets b->steps so that each timed run lasts about o->ms milliseconds.
 * Returns nothing. */
static void size_runs(struct bench *b, const struct opts *o) {
    for (int k = 0; k < N_KINDS; k++)
        for (int v = 0; v < N_VARIANTS; v++) {
            double ns = run(b, k, v, 20);
            int steps = (int)(o->ms * 1e6 / (ns > 1.0 ? ns : 1.0));
            b->steps[k][v] = steps < 20 ? 20 : steps > 200000 ? 200000 : steps;
        }
}

/* The interleaved repetitions: every kind and variant once per repetition,
 * in an order rotated each time. Returns the ns per step of each run,
 * (N_KINDS * N_VARIANTS, reps), to be freed by the caller. */
static double *time_runs(struct bench *b, const struct opts *o) {
    const int nk = N_KINDS * N_VARIANTS;
    double *ns = xcalloc((size_t)nk * (size_t)o->reps, sizeof(double));
    for (int r = 0; r < o->reps; r++)
        for (int q = 0; q < nk; q++) {
            int id = (q + r * 7) % nk, k = id / N_VARIANTS, v = id % N_VARIANTS;
            ns[(size_t)id * (size_t)o->reps + (size_t)r] = run(b, k, v, b->steps[k][v]);
        }
    return ns;
}

/* Medians of the timed runs and dense / variant ratios, taken within a
 * repetition, with their quartiles, into r. Returns nothing. */
static void summarize(const double *ns, int reps, struct results *r) {
    double *tmp = xcalloc((size_t)reps, sizeof(double));
    for (int k = 0; k < N_KINDS; k++)
        for (int v = 0; v < N_VARIANTS; v++) {
            const double *x = ns + (size_t)(k * N_VARIANTS + v) * (size_t)reps;
            const double *dn = ns + (size_t)(k * N_VARIANTS + V_DENSE) * (size_t)reps;
            r->med[k][v] = median(x, reps);
            for (int q = 0; q < reps; q++)
                tmp[q] = dn[q] / x[q];
            r->ratio[k][v] = median(tmp, reps); /* dense / this variant */
            r->rq1[k][v] = quantile(tmp, reps, 0.25);
            r->rq3[k][v] = quantile(tmp, reps, 0.75);
        }
    free(tmp);
}

/* Prints the results as one JSON object (--json). Returns nothing. */
static void print_json(const struct results *r, int reps) {
    printf("{\n  \"topology\": {\"n_in\": %d, \"hidden\": [%d, %d], \"classes\": %d, "
           "\"delays\": [0, %d], \"d_max\": %d, \"ring\": %d},\n",
           N_IN, N_HID, N_HID, N_CLASSES, DELAY_HI, D_MAX, D_MAX + 2);
    printf("  \"input_density\": %.4f,\n  \"layer0_rate\": %.4f,\n", r->in_density, r->rate0);
    printf("  \"reps\": %d,\n  \"variants\": {\n", reps);
    for (int v = 0; v < N_VARIANTS; v++) {
        printf("    \"%s\": {\"rec_params\": %zu, \"params\": %zu, \"layer1_rate\": %.4f, "
               "\"max_abs_diff_between_forms\": %.3g,\n      \"ns_per_step\": {",
               variant_name[v], r->rec_p[v], r->all_p[v], r->rate1[v], r->dev[v]);
        for (int k = 0; k < N_KINDS; k++)
            printf("\"%s\": %.1f%s", kind_name[k], r->med[k][v], k + 1 < N_KINDS ? ", " : "");
        printf("},\n      \"dense_over_this\": {");
        for (int k = 0; k < N_KINDS; k++)
            printf("\"%s\": %.2f%s", kind_name[k], r->ratio[k][v], k + 1 < N_KINDS ? ", " : "");
        printf("},\n      \"dense_over_this_iqr\": {");
        for (int k = 0; k < N_KINDS; k++)
            printf("\"%s\": [%.2f, %.2f]%s", kind_name[k], r->rq1[k][v], r->rq3[k][v],
                   k + 1 < N_KINDS ? ", " : "");
        printf("}}%s\n", v + 1 < N_VARIANTS ? "," : "");
    }
    printf("  },\n  \"rec_param_reduction_conv3\": %.4f,\n"
           "  \"rec_param_reduction_conv5\": %.4f\n}\n",
           1.0 - (double)r->rec_p[V_CONV3] / r->rec_p[V_DENSE],
           1.0 - (double)r->rec_p[V_CONV5] / r->rec_p[V_DENSE]);
}

/* Prints the results as tables for a reader. Returns nothing. */
static void print_text(const struct results *r, int reps) {
    printf("kwsd-bench: %d -> LIF %d -> recurrent LIF %d (delays 0..%d, D = %d) -> %d "
           "classes\n",
           N_IN, N_HID, N_HID, DELAY_HI, D_MAX + 2, N_CLASSES);
    printf("input density %.3f, layer 0 rate %.3f; medians of %d interleaved "
           "repetitions\n\n",
           r->in_density, r->rate0, reps);
    printf("%-8s %10s %10s %8s %9s\n", "variant", "rec par", "params", "L1 rate", "form diff");
    for (int v = 0; v < N_VARIANTS; v++)
        printf("%-8s %10zu %10zu %8.3f %9.2g\n", variant_name[v], r->rec_p[v], r->all_p[v],
               r->rate1[v], r->dev[v]);
    printf("recurrent parameters: conv3 %.2f %% fewer, conv5 %.2f %% fewer than dense\n\n",
           100.0 * (1.0 - (double)r->rec_p[V_CONV3] / r->rec_p[V_DENSE]),
           100.0 * (1.0 - (double)r->rec_p[V_CONV5] / r->rec_p[V_DENSE]));
    printf("%-12s %10s %10s %10s  %-21s %-21s\n", "ns/step", "conv3", "conv5", "dense",
           "dense/conv3 (IQR)", "dense/conv5 (IQR)");
    for (int k = 0; k < N_KINDS; k++) {
        char r3[32], r5[32];
        snprintf(r3, sizeof r3, "%.2fx (%.2f-%.2f)", r->ratio[k][V_CONV3], r->rq1[k][V_CONV3],
                 r->rq3[k][V_CONV3]);
        snprintf(r5, sizeof r5, "%.2fx (%.2f-%.2f)", r->ratio[k][V_CONV5], r->rq1[k][V_CONV5],
                 r->rq3[k][V_CONV5]);
        printf("%-12s %10.1f %10.1f %10.1f  %-21s %-21s\n", kind_name[k], r->med[k][V_CONV3],
               r->med[k][V_CONV5], r->med[k][V_DENSE], r3, r5);
    }
}

/* Frees every model, state and buffer of b, and b. Returns nothing. */
static void bench_free(struct bench *b) {
    for (int v = 0; v < N_VARIANTS; v++) {
        snn_state_free(&b->s[v]);
        snn_state_free(&b->sn[v]);
        snn_state_free(&b->sl[v]);
        torch_net_free(&b->tn[v]);
        torch_rec_free(&b->tr[v]);
        snn_model_free(&b->m[v]);
    }
    free(b->frames);
    free(b->raster);
    free(b->ridx);
    free(b->rn);
    free(b);
}

int main(int argc, char **argv) {
    struct opts o;
    struct results r = {0};
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    struct bench *b = xcalloc(1, sizeof *b);

    /* The inputs, the models calibrated on them, then the layer-alone raster
     * (drawn from the generator where the last fill_model left it). */
    r.in_density = make_frames(b, &o);
    if (build_models(b, &o, &r) < 0)
        return 1;
    make_raster(b, &o);
    for (int v = 0; v < N_VARIANTS; v++)
        r.dev[v] = verify(b, v);

    /* Timing: size each run, then interleave the repetitions. */
    size_runs(b, &o);
    double *ns = time_runs(b, &o);
    summarize(ns, o.reps, &r);
    free(ns);

    if (o.json)
        print_json(&r, o.reps);
    else
        print_text(&r, o.reps);
    if (b->sink == 12345.678f)
        fputc('\n', stderr);
    bench_free(b);
    return 0;
}
