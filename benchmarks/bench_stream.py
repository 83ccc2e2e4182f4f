"""Streaming benchmarks (docs/streaming.md): time to first frame, CPU per stream-second by stage,
RSS over a long stream. Not a test: numbers depend on the machine and its load.
--video CLIP: the face is that video of the person (live.video_session.VideoSession over one
VideoFace prepared before the runs, as a server prepares it once), not the portrait; a path
relative to the shared media (e.g. video/hdtf_aoc_en.mp4) or any path.

    python bench_stream.py ttff   [--size 256] [--runs 20] [--lookahead 0.16] [--live-side | --video CLIP]
    python bench_stream.py cpu    [--size 256] [--seconds 60] [--live-side | --video CLIP]
    python bench_stream.py memory [--size 256] [--minutes 60] [--still | --video CLIP]
    python bench_stream.py mixed  [--size 256] [--minutes 10]

--live-side: the session as a live.Engine's motion worker runs it (16 kHz audio in, look-ahead
0.1 s unless given, 5-frame chunks, no pixels: the renderer only captures the motion, as
live.hosts.Capture): phone recognition, VAD, loudness and motion, without render and encode.
"""
import argparse, gc, math, os, statistics, time

import numpy as np
import torch

from facecast import face
from facecast.audio import load_audio
from facecast.render import MeshRenderer
from facecast.live.session import StreamSession
from facecast.options import StreamOptions
from facecast.types import AudioChunk, VideoFrames

# ../shared/media next to the repository (as tests/conftest.py), or $FACECAST_MEDIA.
MEDIA = os.environ.get("FACECAST_MEDIA", str(__import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "media"))


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def portrait(size):
    path = f"{MEDIA}/portrait/sam_512.jpg"
    img = face.load_image(path)
    return face.frame_portrait(img, face.find_face(img, source=path), size=size, source=path)


def speech(rate=48000):
    a = load_audio(f"{MEDIA}/audio/speech60s_en.wav", sample_rate=rate, mono=True)
    return a.samples


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q / 100 * len(xs)) - 1))]


def live_side(args) -> StreamOptions:
    """StreamOptions of an Engine's motion worker session (live.loadtest.stream_options, fmp4 off:
    the engine encodes elsewhere)."""
    return StreamOptions(size=args.size, fps=25.0, lookahead_s=args.lookahead, realtime=False, fmp4=False,
                         audio_rate=16000, chunk_frames=5, fragment_frames=5)


def capture():
    from facecast.live.hosts import Capture

    return Capture(25.0)


def video_face(args):
    """The prepared VideoFace of --video at --size (decoded, tracked, mouths collected)."""
    from facecast.dubbing.videoface import open_video_face

    path = args.video if os.path.exists(args.video) else f"{MEDIA}/{args.video}"
    t = time.perf_counter()
    face = open_video_face(path, size=args.size)
    print(f"video face {face}: prepared in {time.perf_counter() - t:.2f} s (decode + track + mouths, once)")
    return face


def ttff(args):
    torch.set_num_threads(1)  # as stream() does
    if args.live_side:
        p = portrait(args.size)
        rate = 16000
        opts = live_side(args)
        new_session = lambda: StreamSession(p, opts, render=capture().motion)  # noqa: E731
    elif args.video:
        from facecast.live.video_session import VideoSession

        rate = 48000
        opts = StreamOptions(size=args.size, realtime=False, fmp4=True, lookahead_s=args.lookahead)
        face = video_face(args)
        VideoSession(face, opts).close()  # warm: the first session computes the mouths' arrays
        new_session = lambda: VideoSession(face, opts)  # noqa: E731  (a fresh drawer per stream)
    else:
        p = portrait(args.size)
        renderer = MeshRenderer(p)
        types = __import__("facecast.types", fromlist=["MotionFrames", "MOTION_PARAMS"])
        renderer.render(types.MotionFrames(np.zeros((1, len(types.MOTION_PARAMS)), np.float32), 25.0, 0))  # warm: a session is made before speech arrives
        rate = 48000
        opts = StreamOptions(size=args.size, realtime=False, fmp4=True, lookahead_s=args.lookahead)
        new_session = lambda: StreamSession(p, opts, render=renderer.render)  # noqa: E731
    x = speech(rate)
    hop = rate // 50  # 20 ms
    burst, paced, compute = [], [], []
    for run in range(args.runs):
        start = rate * (2 + 2 * run)  # a different stretch of speech each run
        for mode in ("burst", "paced"):
            s = new_session()
            t0 = time.perf_counter()
            k = 0
            while True:
                if mode == "paced":  # chunk k (covering [20k, 20k+20) ms) arrives when it is complete
                    wait = t0 + k * 0.02 - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                i = start + k * hop
                tp = time.perf_counter()
                s.push_audio(AudioChunk(x[:, i:i + hop], rate))
                out = s.poll()
                k += 1
                if out:
                    t1 = time.perf_counter()
                    (burst if mode == "burst" else paced).append(t1 - t0)
                    if mode == "paced":
                        compute.append(t1 - tp)
                    break
            s.close()
    print(f"size {args.size} lookahead {args.lookahead}s, {args.runs} runs, "
          f"{'live side (motion worker)' if args.live_side else 'fmp4=True'}, "
          f"face {args.video or 'portrait sam_512.jpg'}, load {os.getloadavg()[0]:.2f}")
    for name, xs in (("burst (compute only)", burst), ("paced 20 ms chunks (real time)", paced),
                     ("paced: last push -> frame", compute)):
        print(f"  {name:34s} p50 {1000 * statistics.median(xs):6.1f} ms  p95 {1000 * pct(xs, 95):6.1f} ms")


def cpu(args):
    # Stage timings as CPU time of the process (all threads: x264, onnxruntime, torch); torch on
    # one thread, as a multi-stream server would run it, so idle pool threads do not spin.
    torch.set_num_threads(1)
    opts = StreamOptions(size=args.size, realtime=False, fmp4=True)
    if args.video:
        from facecast.live.video_session import VideoSession

        s = VideoSession(video_face(args), opts)  # prepared before the clock starts
    time.perf_counter = time.process_time
    rate = 16000 if args.live_side else 48000
    x = speech(rate)[:, int(args.start * rate): int((args.start + args.seconds) * rate)]
    if args.live_side:
        cap = capture()
        s = StreamSession(portrait(args.size), live_side(args), render=cap.motion)
    elif not args.video:
        s = StreamSession(portrait(args.size), opts)
    c0 = time.process_time()
    for i in range(0, x.shape[1], rate // 50):
        s.push_audio(AudioChunk(x[:, i:i + rate // 50], rate))
        s.poll()
        if args.live_side:
            cap.params.clear()
    s.close()
    total = time.process_time() - c0
    dur = x.shape[1] / rate
    print(f"size {args.size}, face {args.video or 'portrait sam_512.jpg'}: {dur:.0f} s of speech from "
          f"{args.start:g} s, 20 ms pushes{', live side (motion worker)' if args.live_side else ''}; "
          f"CPU seconds per stream-second (process CPU time), load {os.getloadavg()[0]:.2f}")
    for k, v in s.timings.seconds.items():
        print(f"  {k:10s} {v / dur:.4f}")
    print(f"  {'total':10s} {total / dur:.4f}   (wall-clock-free; torch threads {torch.get_num_threads()})")


def memory(args):
    torch.set_num_threads(1)
    opts = StreamOptions(size=args.size, realtime=False, fmp4=True)
    if args.video:
        from facecast.live.video_session import VideoSession

        s = VideoSession(video_face(args), opts)
    else:
        p = portrait(args.size)
        render = None
        if args.still:
            img = torch.from_numpy(p.image.copy())
            render = lambda m: VideoFrames(img[None].expand(m.num_frames, -1, -1, -1).clone(), m.fps, m.first_frame)
        s = StreamSession(p, opts, render=render)
    x = speech(48000)
    n_bytes = 0
    pos = 0
    t0 = time.perf_counter()
    minute = 0
    print(f"size {args.size}, {args.video or ('still renderer' if args.still else 'MeshRenderer')}, fmp4=True, "
          f"speech60s_en.wav looped in 20 ms pushes")
    print("| simulated min | RSS MiB | wall s | fMP4 MiB |")
    print("|---|---|---|---|")
    print(f"| 0 | {rss_mb():.0f} | 0 | 0 |", flush=True)
    total = int(args.minutes * 60 * 48000)
    done = 0
    while done < total:
        i = pos
        piece = x[:, i:i + 960]
        if piece.shape[1] < 960:
            pos = 0
            continue
        pos += 960
        s.push_audio(AudioChunk(piece, 48000))
        for c in s.poll():
            n_bytes += len(c.fmp4 or b"")
        done += 960
        if done % (60 * 48000) == 0:
            minute += 1
            gc.collect()
            print(f"| {minute} | {rss_mb():.0f} | {time.perf_counter() - t0:.0f} | {n_bytes / 2**20:.1f} |", flush=True)
    s.close()


def mixed(args):
    """Each simulated minute: 25 s of speech (20 ms pushes) with a barge-in in the middle, a
    sentence of text, then silence driven by advance_to up to the minute's end."""
    torch.set_num_threads(1)
    p = portrait(args.size)
    x = speech(48000)
    s = StreamSession(p, StreamOptions(size=args.size, realtime=False, fmp4=True))
    t0 = time.perf_counter()
    print(f"size {args.size}, MeshRenderer, fmp4=True: per minute 25 s speech + barge-in, one TTS sentence, idle")
    print("| simulated min | RSS MiB | wall s |")
    print("|---|---|---|")
    print(f"| 0 | {rss_mb():.0f} | 0 |", flush=True)
    pos = 0
    for minute in range(1, int(args.minutes) + 1):
        for k in range(int(25 / 0.02)):
            if pos + 960 > x.shape[1]:
                pos = 0
            s.push_audio(AudioChunk(x[:, pos:pos + 960], 48000))
            pos += 960
            s.poll()
            if k == 600:
                s.interrupt()
        s.push_text("This sentence is spoken by the voice, once every simulated minute. ")
        s.poll()
        end = minute * 60.0
        t = s.input_end
        while t < end:
            t = min(end, t + 0.04)
            s.advance_to(t)
            s.poll()
        gc.collect()
        print(f"| {minute} | {rss_mb():.0f} | {time.perf_counter() - t0:.0f} |", flush=True)
    s.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ttff", "cpu", "memory", "mixed"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--lookahead", type=float, default=None, help="s (default 0.16; 0.1 with --live-side)")
    ap.add_argument("--live-side", action="store_true", help="the session as an Engine's motion worker runs it")
    ap.add_argument("--start", type=float, default=0.0, help="cpu: where in the speech to start (s)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--still", action="store_true")
    ap.add_argument("--video", default=None, help="a video of the person as the face (ttff, cpu, memory)")
    a = ap.parse_args()
    if a.lookahead is None:
        a.lookahead = 0.1 if a.live_side else 0.16
    {"ttff": ttff, "cpu": cpu, "memory": memory, "mixed": mixed}[a.what](a)
