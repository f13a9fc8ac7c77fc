/* train_checkpoint.c: trainer state files for --resume.
 *
 * A checkpoint is a private file of the trainer, read back only by the same
 * build on the same machine: magic "KWT1", version, the byte sizes of the
 * two plain-data structs it carries (struct snn_cfg, struct train_hparams;
 * fixed-size ints, floats and chars), those structs, the parameter count,
 * optimizer step and epoch, then the parameters, Adam m and v, the BN running
 * statistics, the moving average of both when the trainer keeps one
 * (hp.ema_decay > 0), and a 64-bit FNV-1a checksum of everything before it. The
 * model files users get are .kwsm (model_file.c); checkpoints never ship.
 * Writes are atomic: temp file, fsync, rename, fsync of the directory.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kws/err.h"
#include "kws/train.h"

#define CKPT_MAGIC 0x3154574Bu /* "KWT1" little-endian */
#define CKPT_VERSION 2u

struct ckpt_hash {
    uint64_t h;
};

static void hash_add(struct ckpt_hash *c, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        c->h ^= b[i];
        c->h *= 0x100000001B3ull;
    }
}

static int put(FILE *f, struct ckpt_hash *c, const void *p, size_t n) {
    hash_add(c, p, n);
    return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

static int get(FILE *f, struct ckpt_hash *c, void *p, size_t n) {
    if (fread(p, 1, n, f) != n)
        return KWS_ETRUNCATED;
    hash_add(c, p, n);
    return 0;
}

static size_t padded(size_t n) {
    return (n + 15) & ~(size_t)15;
}

int train_checkpoint_save(const struct train_net *net, int epoch, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -errno;
    struct ckpt_hash c = {0xCBF29CE484222325ull};
    uint32_t head[4] = {CKPT_MAGIC, CKPT_VERSION, (uint32_t)sizeof net->cfg,
                        (uint32_t)sizeof net->hp};
    uint64_t np = net->n_params;
    int64_t step = net->step;
    int32_t ep = epoch;
    size_t pn = padded(net->n_params);
    int rc = put(f, &c, head, sizeof head);
    rc = rc ? rc : put(f, &c, &net->cfg, sizeof net->cfg);
    rc = rc ? rc : put(f, &c, &net->hp, sizeof net->hp);
    rc = rc ? rc : put(f, &c, &np, sizeof np);
    rc = rc ? rc : put(f, &c, &step, sizeof step);
    rc = rc ? rc : put(f, &c, &ep, sizeof ep);
    rc = rc ? rc : put(f, &c, &net->best, sizeof net->best);
    rc = rc ? rc : put(f, &c, net->mem, net->n_params * sizeof(float));
    rc = rc ? rc : put(f, &c, net->mem + 2 * pn, net->n_params * sizeof(float));
    rc = rc ? rc : put(f, &c, net->mem + 3 * pn, net->n_params * sizeof(float));
    rc = rc ? rc : put(f, &c, net->stats_mem, train_stat_count(&net->cfg) * sizeof(float));
    if (net->ema)
        rc = rc ? rc : put(f, &c, net->ema, train_net_ema_count(net) * sizeof(float));
    uint64_t h = c.h;
    if (!rc && fwrite(&h, sizeof h, 1, f) != 1)
        rc = -EIO;
    if (!rc && fflush(f) != 0)
        rc = -errno;
    if (!rc && fsync(fileno(f)) < 0)
        rc = -errno;
    if (fclose(f) != 0 && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path) < 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* make the rename durable */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return 0;
}

int train_checkpoint_load(struct train_net *net, int *epoch, const char *path, char *msg,
                          size_t msglen) {
    memset(net, 0, sizeof *net);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = -errno;
        snprintf(msg, msglen, "%s: cannot open", path);
        return e;
    }
    struct ckpt_hash c = {0xCBF29CE484222325ull};
    uint32_t head[4];
    struct snn_cfg cfg;
    struct train_hparams hp;
    uint64_t np = 0;
    int64_t step = 0;
    int32_t ep = 0;
    int rc = get(f, &c, head, sizeof head);
    if (!rc && head[0] != CKPT_MAGIC) {
        snprintf(msg, msglen, "%s: magic: not a trainer checkpoint", path);
        rc = KWS_EBADMAGIC;
    } else if (!rc && (head[1] != CKPT_VERSION || head[2] != sizeof cfg || head[3] != sizeof hp)) {
        snprintf(msg, msglen, "%s: version: written by another trainer build", path);
        rc = KWS_EBADVERSION;
    }
    rc = rc ? rc : get(f, &c, &cfg, sizeof cfg);
    rc = rc ? rc : get(f, &c, &hp, sizeof hp);
    rc = rc ? rc : get(f, &c, &np, sizeof np);
    rc = rc ? rc : get(f, &c, &step, sizeof step);
    float best = 0.0f;
    rc = rc ? rc : get(f, &c, &ep, sizeof ep);
    rc = rc ? rc : get(f, &c, &best, sizeof best);
    if (!rc) {
        rc = train_net_init(net, &cfg, &hp);
        if (!rc && np != net->n_params) {
            snprintf(msg, msglen, "%s: n_params: %llu does not match the configuration", path,
                     (unsigned long long)np);
            rc = KWS_EBADFIELD;
        }
    }
    size_t pn = padded(np);
    rc = rc ? rc : get(f, &c, net->mem, np * sizeof(float));
    rc = rc ? rc : get(f, &c, net->mem + 2 * pn, np * sizeof(float));
    rc = rc ? rc : get(f, &c, net->mem + 3 * pn, np * sizeof(float));
    rc = rc ? rc : get(f, &c, net->stats_mem, train_stat_count(&cfg) * sizeof(float));
    if (net->ema)
        rc = rc ? rc : get(f, &c, net->ema, train_net_ema_count(net) * sizeof(float));
    uint64_t h = 0, want = c.h;
    if (!rc && fread(&h, sizeof h, 1, f) != 1)
        rc = KWS_ETRUNCATED;
    if (!rc && h != want) {
        snprintf(msg, msglen, "%s: checksum mismatch", path);
        rc = KWS_EBADCHECKSUM;
    }
    if (rc == KWS_ETRUNCATED)
        snprintf(msg, msglen, "%s: file truncated", path);
    fclose(f);
    if (rc) {
        train_net_free(net);
        return rc;
    }
    net->step = step;
    net->best = best;
    *epoch = ep;
    return 0;
}

/* Whether an encoder of kind k reads the level thresholds as steps: the
 * level encoder's hard ones or the ramp encoder's graded ones. */
static int steps_kind(int32_t k) {
    return k == KWS_ENC_LEVEL || k == KWS_ENC_RAMP;
}

/* What differs between two topologies in the parts a fine-tuning start
 * copies (input, hidden layers, front end), named by the options that set
 * them; NULL if nothing does. The encoder may go from hard steps to graded
 * ones or back (--enc-kind): its channels mean the same (band, level). */
static const char *hidden_mismatch(const struct snn_cfg *a, const struct snn_cfg *b) {
    if (a->n_in != b->n_in)
        return "input channels";
    if (a->n_layers != b->n_layers ||
        memcmp(a->layer, b->layer, (size_t)a->n_layers * sizeof a->layer[0]))
        return "hidden layers (--hidden, --rec, --k, --conv-ch, --d-max, --in-delay, --beta, "
               "--beta-rec)";
    struct kws_frontend_cfg fa = a->fe;
    if (steps_kind(fa.enc_kind) && steps_kind(b->fe.enc_kind))
        fa.enc_kind = b->fe.enc_kind;
    if (memcmp(&fa, &b->fe, sizeof fa))
        return "front end (--fmax, --pcen-release, --enc, --enc-kind)";
    return NULL;
}

int train_net_init_from(struct train_net *net, const char *path, char *msg, size_t msglen) {
    struct train_net src;
    int epoch = 0;
    int rc = train_checkpoint_load(&src, &epoch, path, msg, msglen);
    if (rc < 0)
        return rc;
    const struct snn_cfg *a = &src.cfg, *b = &net->cfg;
    const char *what = hidden_mismatch(a, b);
    if (!what && src.hp.use_bn != net->hp.use_bn)
        what = "BatchNorm (--no-bn)";
    if (what) {
        snprintf(msg, msglen, "%s: %s: not the same as in this training", path, what);
        train_net_free(&src);
        return KWS_EBADFIELD;
    }
    /* the averaged weights are the ones the model was exported with */
    train_net_ema_swap(&src);
    /* hidden parameters come first in the block, the readout last */
    size_t n_hidden = (size_t)(net->p.w_out - net->mem);
    memcpy(net->mem, src.mem, n_hidden * sizeof(float));
    int same_labels =
        a->n_classes == b->n_classes && !memcmp(a->labels, b->labels, sizeof a->labels);
    if (same_labels)
        memcpy(net->mem + n_hidden, src.mem + n_hidden, (net->n_params - n_hidden) * sizeof(float));
    memcpy(net->stats_mem, src.stats_mem, train_stat_count(b) * sizeof(float));
    if (net->ema) {
        memcpy(net->ema, net->mem, net->n_params * sizeof(float));
        memcpy(net->ema + net->n_params, net->stats_mem, train_stat_count(b) * sizeof(float));
    }
    snprintf(msg, msglen, "%s: hidden layers%s from epoch %d", path,
             same_labels ? " and readout" : "", epoch);
    train_net_free(&src);
    return 0;
}

/* Whether b's hidden layers are a's, each as wide or wider, and nothing
 * else differs (a model can be widened, see train_net_init_from_model). */
static int widens(const struct snn_cfg *a, const struct snn_cfg *b) {
    if (a->n_in != b->n_in || a->n_layers != b->n_layers || memcmp(&a->fe, &b->fe, sizeof a->fe))
        return 0;
    for (int l = 0; l < a->n_layers; l++) {
        struct snn_layer_cfg la = a->layer[l], lb = b->layer[l];
        /* conv channels group the units by index: more units regroup them */
        if (lb.n < la.n || (la.rec == SNN_REC_CONV && snn_layer_ch(&la) > 1 && lb.n != la.n))
            return 0;
        la.n = lb.n;
        if (memcmp(&la, &lb, sizeof la))
            return 0;
    }
    return 1;
}

/* Copies an (rows_a x cols_a) row-major block into the top left of an
 * (.. x cols_b) one and zeroes the rest of those rows: the columns of new
 * units, which so feed nothing at the start. */
static void copy_block(float *dst, size_t cols_b, const float *src, size_t rows_a, size_t cols_a) {
    for (size_t i = 0; i < rows_a; i++) {
        memcpy(dst + i * cols_b, src + i * cols_a, cols_a * sizeof(float));
        memset(dst + i * cols_b + cols_a, 0, (cols_b - cols_a) * sizeof(float));
    }
}

/* The layer sizes of cfg as "256,256". */
static void sizes(const struct snn_cfg *cfg, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    for (int l = 0; l < cfg->n_layers && k < len; l++)
        k += (size_t)snprintf(buf + k, len - k, "%s%d", l ? "," : "", cfg->layer[l].n);
}

int train_net_init_from_model(struct train_net *net, const char *path, char *msg, size_t msglen) {
    struct snn_model m = {0};
    int rc = snn_model_load(&m, path, msg, msglen);
    if (rc < 0)
        return rc;
    const struct snn_cfg *a = &m.cfg, *b = &net->cfg;
    const char *what = hidden_mismatch(a, b);
    int wider = what && widens(a, b);
    if (wider)
        what = NULL;
    if (!what && net->hp.use_bn)
        what = "BatchNorm (a model file has it folded into its weights: train with --no-bn)";
    if (what) {
        snprintf(msg, msglen, "%s: %s: not the same as in this training", path, what);
        snn_model_free(&m);
        return KWS_EBADFIELD;
    }
    /* Each layer's first units are the model's; a wider layer's other units
     * keep their random start, and their outgoing weights (the next
     * layer's inputs, the dense recurrence, the readout) start at 0. */
    size_t cin_a = (size_t)a->n_in, cin_b = (size_t)b->n_in;
    for (int l = 0; l < b->n_layers; l++) {
        const struct snn_layer_cfg *la = &a->layer[l], *lb = &b->layer[l];
        size_t na = (size_t)la->n, nb = (size_t)lb->n;
        copy_block(net->p.w_in[l], cin_b, m.p.w_in[l], na, cin_a);
        memcpy(net->p.b_in[l], m.p.b_in[l], na * sizeof(float));
        if (lb->rec == SNN_REC_DENSE)
            copy_block(net->p.w_rec[l], nb, m.p.w_rec[l], na, na);
        else if (lb->rec != SNN_REC_NONE)
            memcpy(net->p.w_rec[l], m.p.w_rec[l], snn_rec_weight_count(lb) * sizeof(float));
        if (lb->rec != SNN_REC_NONE)
            memcpy(net->p.delay[l], m.p.delay[l], na * sizeof(float));
        if (lb->in_d_max > 0)
            memcpy(net->p.in_delay[l], m.p.in_delay[l], cin_a * sizeof(float));
        cin_a = na;
        cin_b = nb;
    }
    /* readout rows by class name: a class the model also has starts from its row */
    int n_same = 0;
    for (int c = 0; c < b->n_classes; c++)
        for (int k = 0; k < a->n_classes; k++)
            if (!strcmp(a->labels[k], b->labels[c])) {
                copy_block(net->p.w_out + (size_t)c * cin_b, cin_b, m.p.w_out + (size_t)k * cin_a,
                           1, cin_a);
                net->p.b_out[c] = m.p.b_out[k];
                n_same++;
                break;
            }
    int same_labels = n_same == b->n_classes && a->n_classes == b->n_classes;
    if (net->ema)
        memcpy(net->ema, net->mem, net->n_params * sizeof(float));
    char widened[128] = "";
    if (wider) {
        char sa[48], sb[48];
        sizes(a, sa, sizeof sa);
        sizes(b, sb, sizeof sb);
        snprintf(widened, sizeof widened, " (widened from %s to %s: new units feed nothing yet)",
                 sa, sb);
    }
    if (same_labels || !n_same)
        snprintf(msg, msglen, "%s: hidden layers%s from the model file%s", path,
                 same_labels ? " and readout" : "", widened);
    else
        snprintf(msg, msglen,
                 "%s: hidden layers, and the readout rows of %d of the %d classes (by name), "
                 "from the model file%s",
                 path, n_same, b->n_classes, widened);
    snn_model_free(&m);
    return 0;
}
