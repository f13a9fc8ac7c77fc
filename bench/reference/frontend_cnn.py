#!/usr/bin/env python3
"""Reference: logmel_cnn.py's CNN on kwsd's own front end instead of log-mel:
MODE=spikes its 4-level spikes (4 channels x 40 bands), MODE=feat its PCEN
features; K noisy renders of each training clip through build/frontend-dump
(bench/reference/README.md). Diagnostic only; the data loading, augmentation
and CNN are logmel_cnn.py's, copied."""
import os, sys, wave, random, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

D = sys.argv[1]
EXTRA = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != '-' else None
EPOCHS = int(os.environ.get('EPOCHS', 40))
SEED = int(os.environ.get('SEED', 1))
WIDTH = int(os.environ.get('WIDTH', 64))
LABELS = 'yes,no,up,down,left,right,on,off,stop,go,_silence_,_unknown_'.split(',')
torch.manual_seed(SEED); np.random.seed(SEED); random.seed(SEED)
torch.set_num_threads(2)

def read_wav(p):
    with wave.open(p) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype='<i2').astype(np.float32) / 32768
        if w.getnchannels() > 1:
            x = x.reshape(-1, w.getnchannels())[:, 0]
    return x

def fix(x, n=16000):
    return np.pad(x, (0, max(0, n - len(x))))[:n]

val = set(open(os.path.join(D, 'validation_list.txt')).read().split())
test = set(open(os.path.join(D, 'testing_list.txt')).read().split())
split = {'train': [], 'val': [], 'test': []}
for li, lab in enumerate(LABELS):
    for f in sorted(os.listdir(os.path.join(D, lab))):
        if not f.endswith('.wav'):
            continue
        rel = lab + '/' + f
        s = 'val' if rel in val else 'test' if rel in test else 'train'
        split[s].append((fix(read_wav(os.path.join(D, rel))), li))
if EXTRA:
    for li, lab in enumerate(LABELS):
        p = os.path.join(EXTRA, lab)
        if os.path.isdir(p):
            for f in sorted(os.listdir(p)):
                if f.endswith('.wav'):
                    split['train'].append((fix(read_wav(os.path.join(p, f))), li))
noise = [read_wav(os.path.join(D, '_silence_', f)) for f in os.listdir(os.path.join(D, '_silence_'))
         if ('_silence_/' + f) not in val and ('_silence_/' + f) not in test]
bg = os.path.join(os.path.dirname(D.rstrip('/')), 'background_noise')
noise += [read_wav(os.path.join(bg, f)) for f in sorted(os.listdir(bg))]
print({k: len(v) for k, v in split.items()}, 'noise', len(noise), flush=True)

MODEL = os.environ.get('MODEL', 'models/commands-clip.kwsm')
MODE = os.environ.get('MODE', 'spikes')  # spikes | feat
K = int(os.environ.get('K', 10))
import subprocess
def frontend(clips):  # list of 20800-sample arrays -> (n, 100, 200)
    buf = np.stack(clips).astype(np.float32).tobytes()
    out = subprocess.run([os.environ.get('DUMP', 'build/frontend-dump'), MODEL], input=buf, capture_output=True, check=True).stdout
    a = np.frombuffer(out, np.float32).reshape(len(clips), 100, 200)
    return a
def sel(a):  # -> (n, C, H, 100)
    if MODE == 'feat':
        return torch.tensor(a[:, :, :40].transpose(0, 2, 1).copy()).unsqueeze(1)
    sp = a[:, :, 40:].reshape(a.shape[0], 100, 40, 4)  # band-major: spikes[band * 4 + level]
    return torch.tensor(sp.transpose(0, 3, 2, 1).copy())
def augment(x, lead=4800):
    x = np.concatenate([np.zeros(lead, np.float32), x])
    sh = random.randint(-1600, 1600)
    x = np.roll(x, sh)
    if sh > 0: x[:sh] = 0
    elif sh < 0: x[sh:] = 0
    x = x * (10 ** (random.uniform(-10, 6) / 20))
    if random.random() < 0.8:
        n = random.choice(noise)
        L = len(x)
        if len(n) < L: n = np.tile(n, L // len(n) + 1)
        o = random.randint(0, len(n) - L)
        n = n[o:o + L]
        ps, pn = np.mean(x[4800:] ** 2) + 1e-9, np.mean(n ** 2) + 1e-9
        snr = random.uniform(5, 25)
        x = x + n * np.sqrt(ps / pn / 10 ** (snr / 10))
    return x.astype(np.float32)

def specaug(f):
    B = f.shape[0]
    for i in range(B):
        b0 = random.randint(0, 35); f[i, :, b0:b0 + random.randint(0, 5)] = 0 if MODE == 'spikes' else f[i].mean()
        t1 = random.randint(0, 88); f[i, :, :, t1:t1 + random.randint(0, 10)] = 0 if MODE == 'spikes' else f[i].mean()
    return f

class Net(nn.Module):
    def __init__(s, w=WIDTH, n=len(LABELS)):
        super().__init__()
        cin = 1 if MODE == 'feat' else 4
        s.bn0 = nn.BatchNorm2d(cin)
        s.c1 = nn.Conv2d(cin, w, (3, 3), padding=1); s.b1 = nn.BatchNorm2d(w)
        s.c2 = nn.Conv2d(w, w, (3, 3), padding=1); s.b2 = nn.BatchNorm2d(w)
        s.c3 = nn.Conv2d(w, 2 * w, (3, 3), padding=1); s.b3 = nn.BatchNorm2d(2 * w)
        s.c4 = nn.Conv2d(2 * w, 2 * w, (3, 3), padding=1); s.b4 = nn.BatchNorm2d(2 * w)
        s.drop = nn.Dropout(0.3)
        s.fc = nn.Linear(2 * w, n)
    def forward(s, x):
        x = s.bn0(x)
        x = F.max_pool2d(F.relu(s.b1(s.c1(x))), 2)
        x = F.max_pool2d(F.relu(s.b2(s.c2(x))), 2)
        x = F.max_pool2d(F.relu(s.b3(s.c3(x))), 2)
        x = F.relu(s.b4(s.c4(x)))
        x = x.mean(dim=(2, 3))
        return s.fc(s.drop(x))

t0 = time.time()
EV = {}
for name in ('val', 'test'):
    EV[name] = (sel(frontend([np.concatenate([np.zeros(4800, np.float32), x]) for x, _ in split[name]])),
                torch.tensor([y for _, y in split[name]]))
TR = []
ytr = torch.tensor([y for _, y in split['train']])
for k in range(K):
    TR.append(sel(frontend([augment(x.copy()) for x, _ in split['train']])))
print('rendered', K, 'copies', TR[0].shape, f'{time.time() - t0:.0f} s', flush=True)
net = Net()
print('params', sum(p.numel() for p in net.parameters()), flush=True)
opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
steps = EPOCHS * ((len(split['train']) + 63) // 64)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)

def evaluate(name):
    net.eval()
    xs, ys = EV[name]
    with torch.no_grad():
        pr = net(xs).argmax(1)
    acc = (pr == ys).float().mean().item() * 100
    net.train()
    return acc, pr, ys

best = (-1, 0, 0)
t0 = time.time()
for ep in range(EPOCHS):
    perm = torch.randperm(len(ytr))
    tot = 0; n = 0
    for i in range(0, len(ytr), 64):
        b = perm[i:i + 64]
        ys = ytr[b]
        f = specaug(TR[ep % K][b].clone())
        loss = F.cross_entropy(net(f), ys, label_smoothing=0.1)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        tot += loss.item() * len(b); n += len(b)
    va, _, _ = evaluate('val')
    if va > best[0]:
        te, pr, ys = evaluate('test')
        best = (va, te, ep)
    print(f'epoch {ep + 1} loss {tot / n:.3f} val {va:.2f} % (best val {best[0]:.2f} % test {best[1]:.2f} % at epoch {best[2] + 1}) {time.time() - t0:.0f} s', flush=True)
print(f'chosen by validation: val {best[0]:.2f} % test {best[1]:.2f} %')
