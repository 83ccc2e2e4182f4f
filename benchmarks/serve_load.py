"""Load test of `facecast serve`: N concurrent HTTP clients submit tiny jobs and poll them to the
end, against a real server on loopback. Counts errors (any non-2xx answer, a transport error, a
failed job), samples the server's RSS (and its job workers') every 0.5 s, and times requests.

    .venv/bin/python benchmarks/serve_load.py [--clients 100] [--poll-s 0.5] [--concurrent-jobs 1]
                                              [--size 128] [--json out.json]

Each client: POST /v1/jobs (say "Hi." on one uploaded face, 128 x 128), then GET /v1/jobs/{id}
every --poll-s (and GET /v1/jobs now and then) until it is done, then GET its result with a
Range header. The face is scikit-image's astronaut (ships with the packages). Prints a markdown
block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def start_server(data: Path, concurrent_jobs: int, clients: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-c", "from facecast.cli import main; main()", "serve", "--port", "0", "--data-dir",
           str(data), "--max-concurrent-jobs", str(concurrent_jobs), "--max-jobs-per-token", str(max(100, clients))]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"}, start_new_session=True)
    line = proc.stderr.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}")
    return proc, f"http://127.0.0.1:{m.group(1)}"


class RssSampler(threading.Thread):
    """Samples the RSS (MiB) of the server process and of its children every ``period`` s."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.server: list[float] = []
        self.workers: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from facecast.sysinfo import rss_mib

        while not self.stop.is_set():
            self.server.append(rss_mib(self.pid))
            kids = _children(self.pid)
            self.workers.append(sum(rss_mib(k) for k in kids))
            self.stop.wait(self.period)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def astronaut_jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=90)  # 512 x 512: the face is ~95 px wide
    return buf.getvalue()


async def client_run(http, face_id: str, spec: dict, poll_s: float, stats: dict, n: int) -> None:
    import httpx

    async def call(method: str, url: str, **kw):
        t = time.perf_counter()
        try:
            r = await http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            stats["errors"].append(f"{method} {url}: {type(exc).__name__}")
            return None
        stats["latency"].setdefault(method + " " + re.sub(r"j_[0-9a-f]+", "{id}", url), []).append(
            time.perf_counter() - t)
        if r.status_code >= 300:
            stats["errors"].append(f"{method} {url}: {r.status_code} {r.text[:100]}")
            return None
        return r

    r = await call("POST", "/v1/jobs", data={"spec": json.dumps(spec), "face_id": face_id},
                   headers={"Idempotency-Key": f"load-{n}"})
    if r is None:
        return
    job_id = r.json()["id"]
    polls = 0
    while True:
        await asyncio.sleep(poll_s)
        r = await call("GET", f"/v1/jobs/{job_id}")
        polls += 1
        if polls % 10 == 0:
            await call("GET", "/v1/jobs", params={"limit": 20})
        if r is None:
            continue
        status = r.json()["status"]
        if status == "done":
            break
        if status in ("failed", "cancelled"):
            stats["errors"].append(f"job {job_id}: {status}: {r.json()['error']}")
            return
    r = await call("GET", f"/v1/jobs/{job_id}/result", headers={"Range": "bytes=0-1023"})
    if r is not None and r.status_code != 206:
        stats["errors"].append(f"result of {job_id}: {r.status_code}, not 206")
    stats["done"] += 1


async def run_load(url: str, clients: int, poll_s: float, size: int, sampler: "RssSampler") -> dict:
    import httpx

    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        r = await http.post("/v1/faces", files={"face": ("astronaut.jpg", astronaut_jpeg())})
        r.raise_for_status()
        face_id = r.json()["id"]
        spec = {"kind": "say", "text": "Hi.", "size": size}
        stats: dict = {"errors": [], "latency": {}, "done": 0}
        await asyncio.sleep(1.0)
        stats["rss_at_start"] = sampler.server[-1]  # after the face upload: models for the face check loaded
        t = time.perf_counter()
        await asyncio.gather(*(client_run(http, face_id, spec, poll_s, stats, n) for n in range(clients)))
        stats["seconds"] = time.perf_counter() - t
        stats["metrics"] = (await http.get("/metrics")).text
    return stats


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--poll-s", type=float, default=0.5)
    ap.add_argument("--concurrent-jobs", type=int, default=1)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from facecast.sysinfo import machine_info

    info = machine_info()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="facecast-load-") as tmp:
        proc, url = start_server(Path(tmp) / "data", args.concurrent_jobs, args.clients)
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            stats = asyncio.run(run_load(url, args.clients, args.poll_s, args.size, sampler))
        finally:
            sampler.stop.set()
            sampler.join()
            proc.terminate()
            proc.wait(30)
    load_after = os.getloadavg()
    lat = {k: {"n": len(v), "p50_ms": 1000 * pct(v, 0.5), "p95_ms": 1000 * pct(v, 0.95), "max_ms": 1000 * max(v)}
           for k, v in stats["latency"].items()}
    srv = sampler.server
    result = {"machine": info, "clients": args.clients, "poll_s": args.poll_s, "concurrent_jobs": args.concurrent_jobs,
              "size": args.size, "jobs_done": stats["done"], "errors": len(stats["errors"]),
              "error_samples": stats["errors"][:10], "seconds": round(stats["seconds"], 1),
              "server_rss_mib": {"idle": round(srv[0], 1), "load_start": round(stats["rss_at_start"], 1),
                                 "peak": round(max(srv), 1), "last": round(srv[-1], 1)},
              "workers_rss_mib_peak": round(max(sampler.workers), 1), "latency": lat,
              "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after]}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(f"## {info['date']} - `facecast serve` under load ({info['cpu']}, {info['cores']} cores)\n")
    print(f"`benchmarks/serve_load.py --clients {args.clients} --poll-s {args.poll_s} --concurrent-jobs "
          f"{args.concurrent_jobs} --size {args.size}`, revision {info['git']}, load average before "
          f"{result['load_before'][0]:.2f}, after {result['load_after'][0]:.2f}\n")
    print(f"- {args.clients} clients, {stats['done']} jobs done in {result['seconds']} s, **{result['errors']} errors**")
    rss = result["server_rss_mib"]
    print(f"- server RSS: {rss['idle']} MiB idle, {rss['load_start']} MiB once a face was checked (when the clients "
          f"start), peak {rss['peak']} MiB, {rss['last']} MiB at the end; job workers: peak "
          f"{result['workers_rss_mib_peak']} MiB")
    print("\n| request | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|")
    for k, v in sorted(lat.items()):
        print(f"| `{k}` | {v['n']} | {v['p50_ms']:.0f} | {v['p95_ms']:.0f} | {v['max_ms']:.0f} |")
    for e in stats["errors"][:10]:
        print(f"error: {e}")


if __name__ == "__main__":
    main()
