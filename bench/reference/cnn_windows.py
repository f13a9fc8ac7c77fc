#!/usr/bin/env python3
"""Reference: logmel_cnn.py's network trained for the stream, to bound from
above what a conventional network reaches on kwsd-eval's stream with this
data. Diagnostic only.

Every example is a 1 s window cut from a short recording made as the
evaluation stream makes it: a centre item between two neighbours (training
_unknown_ words or the negatives' training words), 0.5-2 s gaps of
_silence_ audio, background noise under everything at 10-20 dB below the
centre word. A keyword window ends 0-300 ms after the keyword (the whole
word inside) and is that keyword; a window that holds only its first or
last third, or no keyword at all, is filler (_unknown_; _silence_ when the
centre is silence). No label smoothing, so scores can approach 1. Every
MINE epochs the network listens to a fresh sample of the training
negatives and _unknown_ words as a stream (a window every 80 ms) and the
window of each that scored a keyword highest (above 0.2) joins a pool of
hard negatives that a quarter of the filler examples are drawn from.
(The CNN averages over its whole window, so it hears a word anywhere in
it: a max over the window's end positions would pick nearly the same
window, and is left out.)

Usage: cnn_windows.py SPEECH_COMMANDS INIT.pt OUT_PREFIX
Writes OUT_PREFIX-eEPOCH.pt every SAVE_EVERY epochs; cnn_stream.py and
stream-dump then score each on the validation stream, which chooses."""
import os, sys, random, time, wave
import numpy as np, soundfile as sf
import torch, torch.nn.functional as F
from logmel_net import logmel_net

D, INIT, OUT = sys.argv[1:4]
EPOCHS = int(os.environ.get('EPOCHS', 12))
MINE = int(os.environ.get('MINE', 2))
SAVE_EVERY = int(os.environ.get('SAVE_EVERY', 4))
LR = float(os.environ.get('LR', 1e-3))
SEED = int(os.environ.get('SEED', 1))
LABELS = 'yes,no,up,down,left,right,on,off,stop,go,_silence_,_unknown_'.split(',')
KW, SIL, UNK = 10, LABELS.index('_silence_'), LABELS.index('_unknown_')
R, W = 16000, 16000
torch.manual_seed(SEED); np.random.seed(SEED); random.seed(SEED)
torch.set_num_threads(2)

g = logmel_net(int(os.environ.get('WIDTH', 64)), LABELS)
feats, specaug = g['feats'], g['specaug']

def load(p):
    x, r = sf.read(p, dtype='float32')
    x = x[:, 0] if x.ndim > 1 else x
    assert r == R, p
    return x

def bounds(x):  # the word: first and last 10 ms frame within 25 dB of the loudest
    e = np.array([np.sum(x[i:i + 160] ** 2) for i in range(0, len(x) - 159, 160)]) + 1e-12
    on = np.nonzero(e >= e.max() * 10 ** -2.5)[0]
    return int(on[0]) * 160, int(on[-1] + 1) * 160

def item(x, lab):
    on, off = bounds(x)
    rms = np.sqrt(np.mean(x[on:off] ** 2) + 1e-12)
    return x, lab, on, off, rms

held = lambda d: set(open(os.path.join(d, 'validation_list.txt')).read().split()) | \
    set(open(os.path.join(d, 'testing_list.txt')).read().split())
out_sc = held(D)
pos, unk, sil = [], [], []
for root in (D, os.path.join(os.path.dirname(D.rstrip('/')), 'speech_commands_extra')):
    for li, lab in enumerate(LABELS):
        p = os.path.join(root, lab)
        if not os.path.isdir(p):
            continue
        for f in sorted(os.listdir(p)):
            if f.endswith('.wav') and (root != D or lab + '/' + f not in out_sc):
                x = load(os.path.join(p, f))
                (pos if li < KW else sil if li == SIL else unk).append(item(x, li) if li != SIL else x)
NEGD = os.path.join(os.path.dirname(D.rstrip('/')), 'negatives')
out_words = {l.split('/')[0] for l in held(NEGD)}
negs = [item(load(os.path.join(NEGD, w, f)), UNK) for w in sorted(os.listdir(NEGD))
        if w not in out_words and os.path.isdir(os.path.join(NEGD, w)) and not w.startswith('LIC')
        for f in sorted(os.listdir(os.path.join(NEGD, w))) if f.endswith(('.flac', '.wav'))]
BG = os.path.join(os.path.dirname(D.rstrip('/')), 'background_noise')
noise = [load(os.path.join(BG, f)) for f in sorted(os.listdir(BG))] + sil
filler = unk + negs
print(f'keywords {len(pos)} unknown {len(unk)} negatives {len(negs)} silence {len(sil)}', flush=True)

def crop(x, n):
    if len(x) < n:
        x = np.tile(x, n // len(x) + 1)
    o = random.randint(0, len(x) - n)
    return x[o:o + n]

def scene(centre, end):
    """The 1 s window ending at sample `end` of the centre item's own time,
    with a neighbour each side across 0.5-2 s gaps, _silence_ audio in the
    gaps and noise under everything at 10-20 dB below the centre word."""
    x, _, on, off, rms = centre
    w = np.zeros(W, np.float32)
    def put(y, at):  # y starting at centre time `at`
        a, b = max(at, end - W), min(at + len(y), end)
        if a < b:
            w[a - (end - W):b - (end - W)] += y[a - at:b - at]
    put(x, 0)
    prev, nxt = random.choice(filler), random.choice(filler)
    put(prev[0], -int(random.uniform(0.5, 2.0) * R) - len(prev[0]))
    put(nxt[0], len(x) + int(random.uniform(0.5, 2.0) * R))
    w += crop(random.choice(sil), W) * random.uniform(0, 1)
    n = crop(random.choice(noise), W)
    w += n * rms / (np.sqrt(np.mean(n ** 2)) + 1e-9) / 10 ** (random.uniform(10, 20) / 20)
    return w * 10 ** (random.uniform(-10, 6) / 20)

def example(kind, hard):
    if kind == 0:  # a keyword, whole, the window ending 0-300 ms after it
        c = random.choice(pos)
        _, lab, on, off, _ = c
        hi = max(off, min(off + int(0.3 * R), on + W))
        return scene(c, random.randint(off, hi)), lab
    if kind == 1:  # a keyword's first or last third only
        c = random.choice(pos)
        _, _, on, off, _ = c
        third = max(1, (off - on) // 3)
        end = random.randint(on + 800, on + max(801, third)) if random.random() < 0.5 else \
            random.randint(W + off - third, W + off)
        return scene(c, end), UNK
    if kind == 2 and hard:  # a window that fired before
        return hard[random.randrange(len(hard))] * 10 ** (random.uniform(-6, 6) / 20), UNK
    if random.random() < 0.1:  # silence and noise alone
        return scene((np.zeros(R, np.float32), SIL, 0, R, 10 ** (random.uniform(-40, -20) / 20)),
                     R), SIL
    c = random.choice(filler)
    x, _, on, off, _ = c
    return scene(c, random.randint(on + 1600, len(x) + R // 2)), UNK

def mine(net, hard, n=500, stride=1280):
    """Each of n training fillers in its own short stream; its highest
    keyword window (if above 0.2) joins the pool."""
    net.eval()
    got = 0
    with torch.no_grad():
        for c in random.sample(filler, n):
            x, _, on, off, _ = c
            ends = list(range(on + 1600, len(x) + R // 2, stride))
            ws = np.stack([scene(c, e) for e in ends])
            p = F.softmax(net(feats(torch.tensor(ws))), 1)[:, :KW].max(1)[0]
            i = int(p.argmax())
            if p[i] > 0.2:
                hard.append(ws[i]); got += 1
    del hard[:max(0, len(hard) - 3000)]
    net.train()
    return got

net = g['Net']()
net.load_state_dict(torch.load(INIT))
opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-3)
per = (len(pos) * 5 // 2 + 63) // 64
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=EPOCHS * per, pct_start=0.1)
hard = []
t0 = time.time()
for ep in range(EPOCHS):
    if ep % MINE == 0:
        print(f'mined {mine(net, hard)} (pool {len(hard)}) {time.time() - t0:.0f} s', flush=True)
    tot = 0.0
    for i in range(per):
        kinds = [0] * 26 + [1] * 6 + [2] * 10 + [3] * 22
        b = [example(k, hard) for k in kinds]
        xs = torch.tensor(np.stack([x for x, _ in b]).astype(np.float32))
        f = feats(xs)
        if random.random() < 0.5:
            f = specaug(f)
        loss = F.cross_entropy(net(f), torch.tensor([y for _, y in b]))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        tot += loss.item()
    print(f'epoch {ep + 1} loss {tot / per:.3f} {time.time() - t0:.0f} s', flush=True)
    if (ep + 1) % SAVE_EVERY == 0 or ep + 1 == EPOCHS:
        torch.save(net.state_dict(), f'{OUT}-e{ep + 1}.pt')
