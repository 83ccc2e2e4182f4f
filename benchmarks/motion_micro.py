"""Micro-benchmark of the per-frame motion hot spots of a live stream (docs/benchmarks.md):
`motion.coarticulate` on one live frame's window, the loudness gain's two calls per frame, and
`MotionModel.frames` on the window a live session hands it for each frame (16 frames: half a
second behind, the look-ahead ahead, the last frame past the audio known; phones from a second
before the window on), which is all of the motion model's per-frame work.

    python benchmarks/motion_micro.py
"""
import time, numpy as np
from facecast.motion import coarticulate, mouth_targets
from facecast.motion import MotionModel
from facecast.options import MotionOptions
from facecast.types import PhoneSpan, Speech
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
phones = []; t = 0.0
for i in range(300):
    d = float(rng.uniform(0.05, 0.2)); phones.append(PhoneSpan(ph[i % 10], t, t + d)); t += d
fps = 25.0; n = int(t * fps)
energy = rng.uniform(0.05, 1.0, n).astype(np.float32); voiced = rng.random(n) < 0.8
wins = []
for f in range(20, 520):
    lo, hi = f - 12, f + 4
    e = energy[lo:hi].copy(); e[-1] = 0.0
    heard = tuple(p for p in phones if p.end >= lo / fps - 1.0 and p.start < (hi - 1) / fps)  # known so far
    wins.append(Speech(heard, e, voiced[lo:hi], fps, lo))
best = []
for rep in range(5):
    m = MotionModel(MotionOptions())
    t0 = time.process_time()
    for w in wins: m.frames(w)
    best.append((time.process_time() - t0) / len(wins) * 1e3)
print("MotionModel.frames ms/frame", round(min(best), 4))
