"""Live sessions through the server: N WebSocket clients on /v1/live, measured at the client.

Starts `facecast serve`'s app (create_app + uvicorn) in a child process on a free loopback port
with a temporary data folder, uploads the portrait(s) through POST /v1/faces (or, on machines
without mediapipe, registers pre-framed portraits from a .npz in the server process), then for
each N runs N concurrent sessions for --seconds. Each client speaks either text (one sentence
after another, synthesised by the server's Piper voice) or real speech as 16 kHz PCM in 40 ms
frames at wall-clock pace (echo mode), and reads the fragmented MP4 back, counting its frames
from the boxes. Per session: time to first frame (start sent -> first video bytes received),
time from each text to the first frame of its speech (the server's `speaking` event, at the
client), frames received vs expected, and late frames: a frame is late when it arrives later
than (arrival of the first frame) + (its index / fps) + --budget, i.e. a player that starts at
the first frame would have stalled. "Real time" = late fraction < 1 % and >= 97 % of the frames.

This machine (CPU):
    .venv/bin/python benchmarks/serve_live_load.py --sizes 256 512 --streams 1 2 3 --seconds 20
GPU machine (no mediapipe: portraits from benchmarks/make_portraits_npz.py; Piper speaks text):
    python benchmarks/serve_live_load.py --device cuda --portraits .devrun/portraits512.npz \
        --sizes 512 --streams 8 16 32 40 --seconds 30 --workers 10 --encoders 5 --out live_gpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MEDIA = Path(os.environ.get("FACECAST_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))
SENTENCES = ("The quick brown fox jumps over the lazy dog.", "We measured how long the first frame takes.",
             "Every session speaks a sentence, then listens for a moment.",
             "Live avatars should keep up with real time on this machine.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, data_dir: str, size: int, device: str, streams: int, workers, encoders, portraits) -> None:
    """The server (child process): create_app + uvicorn; pre-framed portraits registered as
    faces "npz0", "npz1", ... once the app has started."""
    import uvicorn

    from facecast.serve.app import create_app
    from facecast.serve.live import hub_of
    from facecast.serve.options import ServeOptions

    opts = ServeOptions(port=port, data_dir=data_dir, device=device, live_streams=streams,
                        max_live_per_token=streams, live_size=size, live_workers=workers, live_encoders=encoders,
                        live_max_late=1.0)  # measure what the engine carries: no admission by lateness
    app = create_app(opts)
    if portraits:
        from facecast.live.loadtest import portraits_from_npz

        faces = portraits_from_npz(portraits)

        def register() -> None:
            while hub_of(app.state.facecast) is None:
                time.sleep(0.05)
            for i, p in enumerate(faces):
                hub_of(app.state.facecast).register_face(f"npz{i}", p)

        threading.Thread(target=register, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 20)


def upload_faces(base: str, names: list[str]) -> list[str]:
    import httpx

    ids = []
    for name in names:
        path = MEDIA / "portrait" / name
        with open(path, "rb") as f:
            r = httpx.post(base + "/v1/faces", files={"face": (path.name, f)}, timeout=120)
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


def speech_pcm(path: str | None) -> np.ndarray:
    """int16 16 kHz mono speech (a .npz of 16 kHz float samples, or any audio file)."""
    if path and path.endswith(".npz"):
        x = np.load(path)["samples"]
    else:
        from facecast.audio import load_audio

        x = load_audio(path or MEDIA / "audio" / "speech60s_en.wav", sample_rate=16000, mono=True).samples[0]
    return (np.clip(x, -1, 1) * 32767).astype("<i2")


async def client(url: str, face_id: str, fps: float, seconds: float, mode: str, pcm: np.ndarray, offset: int,
                 budget: float) -> dict:
    import websockets

    from facecast.serve.fmp4_info import Fmp4Info

    info, out = Fmp4Info(), {"speaking_ms": [], "errors": []}
    t_first = None
    late = 0
    async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
        t_start = time.monotonic()
        await ws.send(json.dumps({"type": "start", "face_id": face_id, "fps": fps, "sample_rate": 16000}))
        started = asyncio.Event()

        async def feed() -> None:
            await started.wait()
            t0 = time.monotonic()
            if mode == "audio":
                step, k = 640, 0  # 40 ms frames at wall-clock pace
                while time.monotonic() - t0 < seconds:
                    i = (offset + k * step) % (len(pcm) - step)
                    await ws.send(pcm[i:i + step].tobytes())
                    k += 1
                    await asyncio.sleep(max(0.0, t0 + k * 0.04 - time.monotonic()))
            else:
                k = 0
                while time.monotonic() - t0 < seconds - 3:
                    await ws.send(json.dumps({"type": "text", "text": SENTENCES[(offset + k) % len(SENTENCES)]}))
                    k += 1
                    await asyncio.sleep(4.0)
                await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
            await ws.send(json.dumps({"type": "end"}))

        feeder = asyncio.create_task(feed())
        try:
            async for m in ws:
                t = time.monotonic()
                if isinstance(m, bytes):
                    f0 = info.frames
                    n = info.feed(m)
                    if n and t_first is None:
                        t_first, out["ttff_ms"] = t, (t - t_start) * 1000
                    if n:
                        late += sum(1 for k in range(n) if t > t_first + (f0 + k) / fps + budget)
                    continue
                e = json.loads(m)
                if e["type"] == "started":
                    out["started_ms"] = e["ms"]
                    out["t_started"] = time.monotonic()
                    started.set()
                elif e["type"] == "speaking":
                    out["speaking_ms"].append(e["ms"])
                    out.setdefault("synth_ms", []).append(e["input_ms"])
                elif e["type"] == "error":
                    out["errors"].append(e["message"])
                    print("session error:", e["message"], flush=True)
                elif e["type"] == "ended":
                    out["server_late"] = e["late_frames"]
        except websockets.ConnectionClosed as exc:
            out["errors"].append(f"closed {exc.rcvd.code if exc.rcvd else '?'}")
        finally:
            feeder.cancel()
    t_end = time.monotonic()
    out.update(frames=info.frames, late=late,
               expected=int((t_end - out.get("t_started", t_end)) * fps) if "t_started" in out else 0,
               wall_s=t_end - t_start)
    out.pop("t_started", None)
    return out


def pct(x: list[float], q: float) -> float | None:
    return round(float(np.percentile(x, q)), 1) if x else None


async def level(url: str, faces: list[str], n: int, args, pcm: np.ndarray) -> dict:
    rng = np.random.default_rng(n)
    tasks = [client(url, faces[s % len(faces)], args.fps, args.seconds, args.input, pcm,
                    int(rng.integers(0, len(pcm))), args.budget) for s in range(n)]
    load0 = os.getloadavg()
    rows = await asyncio.gather(*tasks, return_exceptions=True)
    bad = [repr(r) for r in rows if isinstance(r, BaseException)]
    rows = [r for r in rows if not isinstance(r, BaseException)]
    frames = sum(r["frames"] for r in rows)
    late = sum(r["late"] for r in rows)
    ttff = [r["ttff_ms"] for r in rows if "ttff_ms" in r]
    speak = [x for r in rows for x in r["speaking_ms"]]
    synth = [x for r in rows for x in r.get("synth_ms", [])]
    got = min((r["frames"] / max(r["expected"], 1) for r in rows), default=0.0)
    res = {"streams": n, "sessions_ok": len(rows), "failures": bad + [e for r in rows for e in r["errors"]],
           "frames": frames, "late_frames": late, "late_fraction": round(late / max(frames, 1), 4),
           "frames_received_min_fraction": round(got, 3),
           "ttff_ms_p50": pct(ttff, 50), "ttff_ms_p95": pct(ttff, 95),
           "speaking_ms_p50": pct(speak, 50), "speaking_ms_p95": pct(speak, 95),
           "input_ms_p50": pct(synth, 50), "input_ms_p95": pct(synth, 95),
           "load_avg_before": load0, "load_avg_after": os.getloadavg()}
    res["real_time"] = bool(not res["failures"] and len(rows) == n and res["late_fraction"] < 0.01 and got >= 0.97)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--input", choices=("text", "audio"), default="text")
    ap.add_argument("--speech", default=None, help="audio mode: audio file or .npz of 16 kHz samples")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=None, help="motion worker processes (default: by the machine)")
    ap.add_argument("--encoders", type=int, default=None, help="encoder processes (default: by the machine)")
    ap.add_argument("--portraits", default=None, help=".npz of pre-framed portraits (make_portraits_npz.py)")
    ap.add_argument("--faces", nargs="+", default=["sam_512.jpg"], help="portraits in ../shared/media/portrait")
    ap.add_argument("--budget", type=float, default=0.2, help="late when this much after its real-time place (s)")
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args()
    from facecast.sysinfo import git_revision, machine_info

    pcm = speech_pcm(args.speech) if args.input == "audio" else np.zeros(16000, "<i2")
    results = {"machine": machine_info(), "revision": git_revision(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
               time.gmtime()), "args": vars(args), "levels": []}
    for size in args.sizes:
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="facecast-live-load-") as data:
            ctx = mp.get_context("spawn")
            proc = ctx.Process(target=serve, args=(port, data, size, args.device, max(args.streams), args.workers,
                                                   args.encoders, args.portraits))  # not daemonic: it has children
            proc.start()
            try:
                base = f"http://127.0.0.1:{port}"
                wait_up(base, proc)
                faces = ([f"npz{i}" for i in range(len(np.load(args.portraits).files) // 2)] if args.portraits
                         else upload_faces(base, args.faces))
                url = f"ws://127.0.0.1:{port}/v1/live"
                warm = asyncio.run(client(url, faces[0], args.fps, 6.0, args.input, pcm, 0, args.budget))
                print(json.dumps({"size": size, "warm_up": {k: warm.get(k) for k in ("started_ms", "ttff_ms")}}),
                      flush=True)
                for n in args.streams:
                    row = {"size": size, **asyncio.run(level(url, faces, n, args, pcm))}
                    print(json.dumps(row), flush=True)
                    results["levels"].append(row)
            finally:
                proc.terminate()
                proc.join(30)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


def wait_up(base: str, proc, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise SystemExit("the server process died while starting")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not answer {base}/healthz within {timeout:.0f} s")


if __name__ == "__main__":
    main()
