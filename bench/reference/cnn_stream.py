#!/usr/bin/env python3
"""Posteriors of logmel_cnn.py's network (its SAVE=FILE weights) over the
audio of kwsd-eval's evaluation stream written by stream-dump: for every
10 ms frame t, the softmax over the 97-frame (1 s) log-mel window ending at
t, computed every STRIDE frames and held in between. Writes frames x 12
float32 for stream-dump to score with kwsd's detector and rules.
Usage: cnn_stream.py STREAM.f32 OUT.f32 WEIGHTS.pt. Diagnostic only."""
import os, sys, time
import numpy as np, torch, torch.nn.functional as F
from logmel_net import logmel_net
torch.set_num_threads(2)
audio, out, weights = sys.argv[1:4]
STRIDE = int(os.environ.get('STRIDE', 4))
g = logmel_net(int(os.environ.get('WIDTH', 64)), [0] * 12)
net = g['Net']()
net.load_state_dict(torch.load(weights))
net.eval()
x = np.fromfile(audio, dtype=np.float32)
nf = len(x) // 160
# kwsd's frame t covers samples [(t+1) 160 - 400, (t+1) 160); torch's STFT
# frames are n_fft = 512 long, so 112 more samples at the end
x = np.concatenate([np.zeros(240, np.float32), x, np.zeros(112, np.float32)])
t0 = time.time()
L = np.empty((40, nf), np.float32)
for s in range(0, nf, 100000):
    e = min(nf, s + 100000)
    seg = torch.tensor(x[160 * s:160 * (e - 1) + 512])
    st = torch.stft(seg, 512, hop_length=160, win_length=400, window=g['win'], center=False,
                    return_complex=True)
    L[:, s:e] = torch.log(torch.matmul(g['fb_t'], st.abs() ** 2) + 1e-6).numpy()
P = np.zeros((nf, 12), np.float32)
Lt = torch.tensor(L)
ends = list(range(96, nf, STRIDE))
with torch.no_grad():
    for i in range(0, len(ends), 256):
        es = ends[i:i + 256]
        w = torch.stack([Lt[:, e - 96:e + 1] for e in es]).unsqueeze(1)
        p = F.softmax(net(w), 1).numpy()
        for j, e in enumerate(es):
            P[e:e + STRIDE] = p[j]
P[:96] = P[96]
P.tofile(out)
print(f'{nf} frames, {time.time() - t0:.0f} s')
