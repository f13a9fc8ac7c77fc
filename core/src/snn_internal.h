/* snn_internal.h: private helpers of the SNN engine shared by snn.c, model_file.c and tests.
 *
 * The parameter table (which tensor lives where in the one parameter block,
 * in file order), a name for any parameter index, and the naive reference
 * step that tests and benchmarks hold the event-driven snn_step against.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_SNN_INTERNAL_H
#define KWS_CORE_SNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kws/snn.h"

/* Most tensors a model holds. Every tensor of the parameter table has its own
 * pointer in struct snn_params (w_in, b_in, w_rec, delay and in_delay per
 * layer, then w_out and b_out), so the number of those pointers bounds the
 * table whatever a configuration or a file header asks for. snn__tensors
 * also checks it as it fills the table. */
#define SNN__MAX_TENSORS ((int)(sizeof(struct snn_params) / sizeof(float *)))
_Static_assert(sizeof(struct snn_params) == (5 * SNN_MAX_LAYERS + 2) * sizeof(float *),
               "struct snn_params holds only tensor pointers, one per tensor");

/* One tensor of the parameter block. */
struct snn__tensor {
    char name[32]; /* "layer[1].w_rec", "layer[1].in_delay", "w_out" */
    size_t offset; /* floats from the start of the block */
    size_t size;   /* floats */
    int layer;     /* hidden layer index, -1 for the readout */
    float **slot;  /* where its pointer goes in struct snn_params, if a params struct was given */
};

/* Lists the tensors of cfg in file order (the order of struct snn_params'
 * comment). p may be NULL; otherwise each entry's slot points into p.
 * cfg must be valid. Returns the number of tensors. */
int snn__tensors(const struct snn_cfg *cfg, struct snn_params *p,
                 struct snn__tensor out[SNN__MAX_TENSORS]);

/* Writes "layer[1].w_rec[2]" for the parameter at flat index i into buf. */
void snn__param_name(const struct snn_cfg *cfg, size_t i, char *buf, size_t buflen);

/* The two halves of a recurrent layer's step in scatter form, exposed so
 * that benchmarks can time them alone. snn__ring_read adds this step's
 * arrival slot r (C) into cur (C) and clears it. snn__scatter adds the
 * spikes idx[0..ns) of layer l at this step into ring (D, C'), whose
 * current read slot is slot: a spike of j lands in slot (slot + 1 + d_j)
 * mod D, K adds for a conv-delay layer, C contiguous adds (column j of W)
 * for a dense one. snn_step scatters conv-delay layers this way; dense
 * layers it gathers instead (the senders due each step, their rows summed
 * in registers), so the dense branch serves kwsd-bench's layer timing. */
void snn__ring_read(float *restrict cur, float *restrict r, int32_t n);
void snn__scatter(const struct snn_model *m, int l, float *ring, int32_t slot, const int32_t *idx,
                  int32_t ns);

/* The reference step: the same network as snn_step computed the plain way,
 * dense matrix-vector products everywhere (W_in x over every input, the full
 * C x C recurrent matrix, conv kernels expanded to it) and a spike HISTORY
 * instead of an arrival ring: rec_i[t] = sum_j W[i][j] s_j[t - 1 - d_j].
 * It uses s->ring[l] as the (D_l, C_l) history of the layer's spikes, so a
 * state stepped by snn__step_naive must only ever be stepped by it (after
 * snn_state_reset). Slow; for tests and benchmarks only. */
void snn__step_naive(const struct snn_model *m, struct snn_state *s, const float *in, float *out);

#endif /* KWS_CORE_SNN_INTERNAL_H */
