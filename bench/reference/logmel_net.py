"""logmel_cnn.py's front end, SpecAugment and network, for the scripts that
reuse them (cnn_stream.py, cnn_windows.py). logmel_cnn.py trains when it
runs, so its sections between the "# ---- front end and network" and
"# ---- training" markers are run from its own text here. Diagnostic only."""
import os, random
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F


def logmel_net(width, labels):
    """The namespace of those sections (feats, specaug, win, fb_t, Net, ...)
    for a network of this width over these labels."""
    src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'logmel_cnn.py')).read()
    g = {'WIDTH': width, 'LABELS': labels, 'np': np, 'torch': torch, 'nn': nn, 'F': F,
         'random': random}
    exec(src[src.index('# ---- front end and network'):src.index('def augment(')], g)
    exec(src[src.index('def specaug('):src.index('# ---- training')], g)
    return g
