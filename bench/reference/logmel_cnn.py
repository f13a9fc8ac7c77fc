#!/usr/bin/env python3
"""Reference: a conventional (non-spiking) CNN on log-mel features, trained
on the same speech_commands split kwsd-train uses, to tell whether the data
or kwsd's network bounds clip accuracy. Diagnostic only.

NEG=1 adds the training words of ../negatives (those in neither of its list
files) as _unknown_: a 1 s crop near each phrase's loudest part, drawn anew
every epoch. SAVE=FILE keeps the best-validation network's weights there
(cnn_stream.py runs it over kwsd-eval's evaluation stream)."""
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
negs = []
if os.environ.get('NEG') == '1':
    import soundfile as sf
    NEG = os.path.join(os.path.dirname(D.rstrip('/')), 'negatives')
    held = {l.split('/')[0] for f in ('validation_list.txt', 'testing_list.txt')
            for l in open(os.path.join(NEG, f)).read().split()}
    for w in sorted(os.listdir(NEG)):
        if w in held or not os.path.isdir(os.path.join(NEG, w)):
            continue
        for f in sorted(os.listdir(os.path.join(NEG, w))):
            if f.endswith(('.flac', '.wav')):
                x, r = sf.read(os.path.join(NEG, w, f), dtype='float32')
                x = x[:, 0] if x.ndim > 1 else x
                assert r == 16000
                x = np.pad(x, (0, max(0, 16000 - len(x))))
                e = np.convolve(x ** 2, np.ones(1600), 'valid')[::160]  # 100 ms energies
                c = int(np.argmax(np.convolve(e, np.ones(10), 'valid'))) * 160
                negs.append((x, c))
def neg_crop(x, c):
    o = min(max(0, c - 6400 + random.randint(-4800, 4800)), len(x) - 16000)
    return x[o:o + 16000].copy()
train_words = split['train']
print({k: len(v) for k, v in split.items()}, 'noise', len(noise), 'negatives', len(negs), flush=True)

# ---- front end and network (logmel_net.py runs this part for cnn_stream.py and cnn_windows.py) ----
# log-mel front end: 25 ms Hann window, 10 ms hop, 512-point FFT, 40 bands 20-7600 Hz
def mel(f): return 2595 * np.log10(1 + f / 700)
def imel(m): return 700 * (10 ** (m / 2595) - 1)
pts = imel(np.linspace(mel(20), mel(7600), 42))
bins = np.fft.rfftfreq(512, 1 / 16000)
fb = np.zeros((40, 257), np.float32)
for b in range(40):
    lo, c, hi = pts[b], pts[b + 1], pts[b + 2]
    fb[b] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
fb_t = torch.tensor(fb)
win = torch.hann_window(400)

def feats(x):  # x: (B, 16000) tensor -> (B, 1, 40, 98)
    s = torch.stft(x, 512, hop_length=160, win_length=400, window=win, center=False, return_complex=True)
    p = s.abs() ** 2
    m = torch.matmul(fb_t, p)
    return torch.log(m + 1e-6).unsqueeze(1)

def augment(x):
    sh = random.randint(-1600, 1600)
    x = np.roll(x, sh)
    if sh > 0: x[:sh] = 0
    elif sh < 0: x[sh:] = 0
    x = x * (10 ** (random.uniform(-10, 6) / 20))
    if random.random() < 0.8:
        n = random.choice(noise)
        o = random.randint(0, len(n) - 16000)
        n = n[o:o + 16000]
        ps, pn = np.mean(x ** 2) + 1e-9, np.mean(n ** 2) + 1e-9
        snr = random.uniform(5, 25)
        x = x + n * np.sqrt(ps / pn / 10 ** (snr / 10))
    return x.astype(np.float32)

def specaug(f):
    B = f.shape[0]
    for i in range(B):
        b0 = random.randint(0, 35); f[i, :, b0:b0 + random.randint(0, 5)] = f[i].mean()
        t0 = random.randint(0, 88); f[i, :, :, t0:t0 + random.randint(0, 10)] = f[i].mean()
    return f

class Net(nn.Module):
    def __init__(s, w=WIDTH, n=len(LABELS)):
        super().__init__()
        s.bn0 = nn.BatchNorm2d(1)
        s.c1 = nn.Conv2d(1, w, (3, 3), padding=1); s.b1 = nn.BatchNorm2d(w)
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

# ---- training ----
net = Net()
print('params', sum(p.numel() for p in net.parameters()), flush=True)
opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
steps = EPOCHS * ((len(split['train']) + len(negs) + 63) // 64)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)

def evaluate(name):
    net.eval()
    xs = torch.tensor(np.stack([x for x, _ in split[name]]))
    ys = torch.tensor([y for _, y in split[name]])
    with torch.no_grad():
        pr = net(feats(xs)).argmax(1)
    acc = (pr == ys).float().mean().item() * 100
    net.train()
    return acc, pr, ys

best = (-1, 0, 0)
t0 = time.time()
for ep in range(EPOCHS):
    if negs:
        split['train'] = train_words + [(neg_crop(x, c), LABELS.index('_unknown_')) for x, c in negs]
    random.shuffle(split['train'])
    tot = 0; n = 0
    for i in range(0, len(split['train']), 64):
        b = split['train'][i:i + 64]
        xs = torch.tensor(np.stack([augment(x.copy()) for x, _ in b]))
        ys = torch.tensor([y for _, y in b])
        f = specaug(feats(xs))
        loss = F.cross_entropy(net(f), ys, label_smoothing=0.1)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        tot += loss.item() * len(b); n += len(b)
    va, _, _ = evaluate('val')
    if va > best[0]:
        te, pr, ys = evaluate('test')
        best = (va, te, ep)
        if os.environ.get('SAVE'):
            torch.save(net.state_dict(), os.environ['SAVE'])
    print(f'epoch {ep + 1} loss {tot / n:.3f} val {va:.2f} % (best val {best[0]:.2f} % test {best[1]:.2f} % at epoch {best[2] + 1}) {time.time() - t0:.0f} s', flush=True)
print(f'chosen by validation: val {best[0]:.2f} % test {best[1]:.2f} %')
