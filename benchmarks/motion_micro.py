"""Micro-benchmark of the per-frame motion hot spots of a live stream (docs/benchmarks.md):
`motion.coarticulate` on one live frame's window and the loudness gain's two calls per frame.

    python benchmarks/motion_micro.py
"""
import time, numpy as np
from facecast.motion import coarticulate, mouth_targets
from facecast.types import PhoneSpan
from facecast.speech import LoudnessGain
rng = np.random.default_rng(0)
ph = ["AA","B","IY","M","S","T","EH","F","SIL","OW"]
phones=[]; t=0.0
for i in range(40):
    d=float(rng.uniform(0.05,0.2)); phones.append(PhoneSpan(ph[i%10], t, t+d)); t+=d
times = np.linspace(2.0, 2.0+0.68, 17*4)  # a live frame's window: ~17 frames x 4 substeps
tg = mouth_targets(phones)
best=[]
for rep in range(5):
    t0=time.process_time()
    for _ in range(2000): coarticulate(tg, times, 0.1)
    best.append((time.process_time()-t0)/2000*1e3)
print("coarticulate ms/call", round(min(best),4))
g = LoudnessGain(); e = rng.random(17).astype(np.float32)
for _ in range(800): g(e[:1], np.array([True]))
best=[]
for rep in range(5):
    t0=time.process_time()
    for _ in range(2000):
        g(e[:1], np.array([True])); g(e, np.zeros(17, bool))
    best.append((time.process_time()-t0)/2000*1e3)
print("gain pair ms/frame", round(min(best),4))
