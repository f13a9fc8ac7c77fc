#!/usr/bin/python3
# gen_snn.py: golden fixtures for the SNN engine, from an independent numpy reference.
#
# The reference follows the training-time formulation of the paper's code
# (reference/conv-delrec.md section 3.2), not kwsd's event-driven one: each
# recurrent layer keeps a buffer R of shape (C, D); at every step it reads
# and clears column p, turns the spikes y into Y[j, l] = y_j * mask[j, l]
# with a one-hot mask at l = 1 + round(d_j), computes X = W @ Y (dense) or a
# "same" cross-correlation of every column with the kernel w (conv), drops
# tap l = 0 and adds column l of X into column (p + l) mod D. The .kwsm
# writer below is written from docs/MODEL_FORMAT.md with struct and
# zlib.crc32, so the C reader is checked against a second implementation.
#
# Run by hand (CI never runs it; the outputs are committed):
#     /usr/bin/python3 tests/golden/gen_snn.py   (Debian python3-numpy)
# writes tests/golden/<case>.kwsm and tests/golden/<case>.bin.
#
# <case>.bin ("KWSG" fixture, little-endian):
#     char magic[4] = "KWSG"; uint32 version = 1;
#     uint32 B, T, n_in, n_layers, C[n_layers], n_classes;
#     float32 in[B][T][n_in];
#     for each layer l: float32 spk[B][T][C_l]; float32 v[B][T][C_l];
#     float32 out[B][T][n_classes]
# spk and v are the layer's spikes and membranes after each step, out the
# readout potentials after each step.
#
# SPDX-License-Identifier: MIT
import os
import struct
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
F32 = np.float32

REC_NONE, REC_CONV, REC_DENSE = 0, 1, 2
RESET_HARD, RESET_SOFT = 0, 1
MAX_LAYERS, MAX_CLASSES, LABEL_LEN = 4, 32, 32
HEADER_BYTES = 1536
MARGIN = 1e-3  # no pre-spike potential may come closer than this to the threshold


def layer(n, rec=REC_NONE, k=0, d_max=0, beta=0.5, gain=1.0, thresh=1.0, reset=RESET_HARD):
    return dict(n=n, rec=rec, k=k, d_max=d_max, beta=beta, gain=gain, thresh=thresh, reset=reset)


# ==== Parameters ====


def make_params(cfg, rng):
    """Random parameters in struct snn_params order: a list of (name, array)."""
    params = []
    prev = cfg["n_in"]
    for l, lc in enumerate(cfg["layers"]):
        n = lc["n"]
        scale = cfg.get("w_scale", 1.0)
        params.append((f"layer[{l}].w_in", (rng.uniform(-1, 1, (n, prev)) * scale).astype(F32)))
        params.append((f"layer[{l}].b_in", rng.uniform(-0.2, 0.4, n).astype(F32)))
        if lc["rec"] == REC_CONV:
            params.append((f"layer[{l}].w_rec", rng.uniform(-1, 1, lc["k"]).astype(F32)))
        elif lc["rec"] == REC_DENSE:
            params.append((f"layer[{l}].w_rec", rng.uniform(-0.8, 0.8, (n, n)).astype(F32)))
        if lc["rec"] != REC_NONE:
            # Real-valued delays as trained, including exact halves (round half to
            # even), negatives (clamped to 0) and values past d_max (clamped).
            d = rng.uniform(-0.6, lc["d_max"] + 0.6, n)
            d[0] = 0.5
            if n > 2:
                d[1] = 1.5
                d[2] = lc["d_max"] + 3.0
            params.append((f"layer[{l}].delay", d.astype(F32)))
        prev = n
    params.append(("w_out", rng.uniform(-1, 1, (cfg["n_classes"], prev)).astype(F32)))
    params.append(("b_out", rng.uniform(-0.1, 0.1, cfg["n_classes"]).astype(F32)))
    return params


def int_delays(d, d_max):
    """Inference delays: round half to even (np.round), clamp to [0, d_max]."""
    return np.clip(np.round(d), 0, d_max).astype(np.int64)


# ==== Reference forward ====


def conv_same(y, w):
    """X[i] = sum_m w[m] * y[i + m - pad], zero outside [0, C) (PyTorch conv1d)."""
    k = len(w)
    pad = (k - 1) // 2
    c = len(y)
    ypad = np.concatenate([np.zeros(pad, F32), y.astype(F32), np.zeros(pad, F32)])
    x = np.zeros(c, F32)
    for i in range(c):
        for m in range(k):
            x[i] += F32(w[m]) * ypad[i + m]
    return x


def forward(cfg, P, x):
    """x: (T, n_in) -> per layer spikes and membranes (T, C), readout (T, classes).
    Also returns the smallest |H - thresh| seen, to reject ambiguous fixtures."""
    T = x.shape[0]
    layers = cfg["layers"]
    V = [np.zeros(lc["n"], F32) for lc in layers]
    R = [np.zeros((lc["n"], lc["d_max"] + 2), F32) for lc in layers]
    ptr = [0 for _ in layers]
    v_out = np.zeros(cfg["n_classes"], F32)
    spk_seq = [np.zeros((T, lc["n"]), F32) for lc in layers]
    v_seq = [np.zeros((T, lc["n"]), F32) for lc in layers]
    out_seq = np.zeros((T, cfg["n_classes"]), F32)
    margin = np.inf
    for t in range(T):
        inp = x[t].astype(F32)
        for l, lc in enumerate(layers):
            n, D = lc["n"], lc["d_max"] + 2
            cur = (P[f"layer[{l}].w_in"] @ inp + P[f"layer[{l}].b_in"]).astype(F32)
            if lc["rec"] != REC_NONE:
                p = ptr[l]
                cur = (cur + R[l][:, p]).astype(F32)
            h = (F32(lc["beta"]) * V[l] + F32(lc["gain"]) * cur).astype(F32)
            margin = min(margin, float(np.min(np.abs(h - F32(lc["thresh"])))))
            s = (h >= F32(lc["thresh"])).astype(F32)
            if lc["reset"] == RESET_HARD:
                V[l] = (h * (F32(1) - s)).astype(F32)
            else:
                V[l] = (h - F32(lc["thresh"]) * s).astype(F32)
            if lc["rec"] != REC_NONE:
                d = int_delays(P[f"layer[{l}].delay"], lc["d_max"])
                Y = np.zeros((n, D), F32)
                Y[np.arange(n), 1 + d] = s
                if lc["rec"] == REC_DENSE:
                    X = (P[f"layer[{l}].w_rec"] @ Y).astype(F32)
                else:
                    X = np.stack([conv_same(Y[:, c], P[f"layer[{l}].w_rec"]) for c in range(D)], 1)
                p = ptr[l]
                R[l][:, p] = 0
                for k in range(1, D):  # tap 0 is dropped: the minimum delay is one step
                    R[l][:, (p + k) % D] += X[:, k]
                ptr[l] = (p + 1) % D
            spk_seq[l][t] = s
            v_seq[l][t] = V[l]
            inp = s
        o = (P["w_out"] @ inp + P["b_out"]).astype(F32)
        v_out = (F32(cfg["out_beta"]) * v_out + F32(cfg["out_gain"]) * o).astype(F32)
        out_seq[t] = v_out
    return spk_seq, v_seq, out_seq, margin


# ==== Files ====


def kwsm_bytes(cfg, params):
    """A .kwsm file per docs/MODEL_FORMAT.md."""
    h = bytearray(HEADER_BYTES)
    struct.pack_into("<4sII", h, 0, b"KWS1", 1, HEADER_BYTES)
    struct.pack_into("<ii", h, 12, cfg["n_in"], len(cfg["layers"]))
    for l, lc in enumerate(cfg["layers"]):
        struct.pack_into("<iiiifffi", h, 20 + 32 * l, lc["n"], lc["rec"], lc["k"], lc["d_max"],
                         lc["beta"], lc["gain"], lc["thresh"], lc["reset"])
    struct.pack_into("<iff", h, 148, cfg["n_classes"], cfg["out_beta"], cfg["out_gain"])
    for c, name in enumerate(cfg["labels"]):
        raw = name.encode()
        assert len(raw) < LABEL_LEN
        h[160 + 32 * c:160 + 32 * c + len(raw)] = raw
    # A front end that makes exactly n_in spike channels (n_in bands, one
    # level each): the loader refuses a network whose input count differs.
    fe = struct.pack("<iiiiiffifffffii8fff", 16000, 400, 160, 512, cfg["n_in"], 20.0, 7600.0, 1,
                     0.025, 0.98, 2.0, 0.5, 1e-6, 0, 1, 0.5, 0, 0, 0, 0, 0, 0, 0, 0.0, 1.0)
    assert len(fe) == 100
    h[1184:1284] = fe
    flat = np.concatenate([a.reshape(-1) for _, a in params]).astype("<f4")
    struct.pack_into("<Q", h, 1284, flat.size)
    body = bytes(h) + flat.tobytes()
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def fixture_bytes(cfg, x, spk, v, out):
    B, T, n_in = x.shape
    hdr = struct.pack("<4sIIIII", b"KWSG", 1, B, T, n_in, len(cfg["layers"]))
    hdr += struct.pack(f"<{len(cfg['layers'])}I", *[lc["n"] for lc in cfg["layers"]])
    hdr += struct.pack("<I", cfg["n_classes"])
    parts = [x]
    for l in range(len(cfg["layers"])):
        parts += [spk[l], v[l]]
    parts.append(out)
    return hdr + b"".join(np.ascontiguousarray(p, dtype="<f4").tobytes() for p in parts)


def delays_observable(cfg, P, x):
    """True if moving any one recurrent neuron's delay by one step changes its
    layer's spikes or membranes in some sequence: then every delay (and the
    ring slot it lands in) is actually checked by the fixture."""
    base = [forward(cfg, P, xb) for xb in x]
    for l, lc in enumerate(cfg["layers"]):
        if lc["rec"] == REC_NONE:
            continue
        key = f"layer[{l}].delay"
        d = int_delays(P[key], lc["d_max"])
        for j in range(lc["n"]):
            P2 = dict(P)
            dj = P[key].copy()
            dj[j] = d[j] + 1 if d[j] < lc["d_max"] else d[j] - 1
            P2[key] = dj
            if all(np.array_equal(forward(cfg, P2, xb)[1][l], r[1][l])
                   for xb, r in zip(x, base)):
                return False
    return True


def make_case(name, cfg, seed, B=2, T=16, density=0.3):
    cfg.setdefault("out_beta", 0.8)
    cfg.setdefault("out_gain", 1.0)
    cfg.setdefault("labels", [f"c{i}" for i in range(cfg["n_classes"])])
    for attempt in range(1000):
        rng = np.random.default_rng(seed * 1000 + attempt)
        params = make_params(cfg, rng)
        P = dict(params)
        counts = rng.integers(1, 4, (B, T, cfg["n_in"]))
        x = np.where(rng.random((B, T, cfg["n_in"])) < density, counts, 0).astype(F32)
        runs = [forward(cfg, P, x[b]) for b in range(B)]
        margin = min(r[3] for r in runs)
        n_spk = [sum(float(r[0][l].sum()) for r in runs) for l in range(len(cfg["layers"]))]
        busy = all(s > 0 for s in n_spk) or cfg.get("silent", False)
        if margin >= MARGIN and busy and delays_observable(cfg, P, x):
            break
    else:
        raise SystemExit(f"{name}: no fixture with margin {MARGIN} after 1000 tries")
    spk = [np.stack([r[0][l] for r in runs]) for l in range(len(cfg["layers"]))]
    v = [np.stack([r[1][l] for r in runs]) for l in range(len(cfg["layers"]))]
    out = np.stack([r[2] for r in runs])
    with open(os.path.join(HERE, name + ".kwsm"), "wb") as f:
        f.write(kwsm_bytes(cfg, params))
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(fixture_bytes(cfg, x, spk, v, out))
    print(f"{name}: seed attempt {attempt}, margin {margin:.4f}, spikes per layer {n_spk}")


def main():
    # Linear alone: beta 0 and an unreachable threshold make V = W_in x + b_in.
    make_case("snn_linear", dict(n_in=6, n_classes=3, silent=True,
                                 layers=[layer(8, beta=0.0, thresh=1e9)]), seed=1)
    make_case("snn_lif_hard", dict(n_in=6, n_classes=3,
                                   layers=[layer(8, beta=0.6, reset=RESET_HARD)]), seed=2)
    make_case("snn_lif_soft", dict(n_in=6, n_classes=3,
                                   layers=[layer(8, beta=0.8, gain=0.7, reset=RESET_SOFT)]), seed=3)
    make_case("snn_conv_delay", dict(n_in=5, n_classes=3, layers=[
        layer(8, beta=0.4), layer(8, rec=REC_CONV, k=3, d_max=6, beta=0.38583)]), seed=4)
    make_case("snn_dense_delay", dict(n_in=5, n_classes=3, layers=[
        layer(8, beta=0.4), layer(7, rec=REC_DENSE, d_max=4, beta=0.5, reset=RESET_SOFT)]), seed=5)
    # Readout: a slow leaky integrator with gain, after a plain LIF layer.
    make_case("snn_readout", dict(n_in=4, n_classes=5, out_beta=0.9, out_gain=0.5,
                                  layers=[layer(6, beta=0.3)]), seed=6)
    # The whole small network: LIF, conv-delay K=5, dense delay, 4 classes.
    make_case("snn_network", dict(n_in=7, n_classes=4, out_beta=0.047619,
                                  labels=["yes", "no", "_silence_", "_unknown_"], layers=[
                                      layer(8, beta=0.047619),
                                      layer(8, rec=REC_CONV, k=5, d_max=7, beta=0.38583),
                                      layer(6, rec=REC_DENSE, d_max=3, beta=0.5,
                                            reset=RESET_SOFT)]), seed=7)


if __name__ == "__main__":
    main()
