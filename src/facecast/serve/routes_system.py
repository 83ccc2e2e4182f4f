"""GET /healthz (no token: for load balancers; says only that the server answers) and GET
/metrics (Prometheus text format, token required like every other route).

Metrics: facecast_jobs{state}, facecast_queue_depth, facecast_jobs_running,
facecast_job_seconds{kind} (summary: _sum and _count of finished jobs), facecast_live_sessions,
facecast_live_frames_sent_total, facecast_live_frames_late_total, facecast_requests_refused_total
{reason}, facecast_process_resident_bytes, facecast_job_workers, and on CUDA
facecast_gpu_memory_used_bytes / facecast_gpu_memory_total_bytes {device}."""

from __future__ import annotations

import sys

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from .. import __version__
from ..sysinfo import rss_mib
from .security import Principal, require_auth
from .specs import Health, errors
from .state import ServerState, get_state

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health, summary="Liveness: 200 while the server answers (no token)")
async def healthz() -> dict:
    return {"status": "ok", "version": __version__}


@router.get("/metrics", response_class=PlainTextResponse, responses=errors(401),
            summary="Prometheus metrics (text format 0.0.4)")
async def metrics(state: ServerState = Depends(get_state), principal: Principal = Depends(require_auth)):
    return PlainTextResponse(render_metrics(state), media_type="text/plain; version=0.0.4; charset=utf-8")


def _block(lines: list[str], name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" for labels, value in samples]


def render_metrics(state: ServerState) -> str:
    counts = state.store.status_counts()
    m = state.metrics
    lines: list[str] = []
    _block(lines, "facecast_jobs", "gauge", "Jobs in the store by state.",
           [(f'{{state="{s}"}}', n) for s, n in counts.items()])
    _block(lines, "facecast_queue_depth", "gauge", "Jobs waiting for a worker.", [("", counts["queued"])])
    _block(lines, "facecast_jobs_running", "gauge", "Jobs running now.", [("", state.runner.running)])
    _block(lines, "facecast_job_workers", "gauge", "Job worker processes alive.",
           [("", len(state.runner.worker_pids()))])
    secs = state.store.job_seconds()
    lines += ["# HELP facecast_job_seconds Run time of finished jobs, start to done.",
              "# TYPE facecast_job_seconds summary"]
    for kind, (total, n) in sorted(secs.items()):
        lines += [f'facecast_job_seconds_sum{{kind="{kind}"}} {total:g}', f'facecast_job_seconds_count{{kind="{kind}"}} {n}']
    _block(lines, "facecast_live_sessions", "gauge", "Live sessions open.", [("", state.live.open_sessions)])
    _block(lines, "facecast_live_frames_sent_total", "counter", "Live frames sent.", [("", m.sent)])
    _block(lines, "facecast_live_frames_late_total", "counter", "Live frames sent after their time.", [("", m.late)])
    _block(lines, "facecast_requests_refused_total", "counter", "Requests refused by a limit (429, 413).",
           [(f'{{reason="{r}"}}', n) for r, n in sorted(m.refused.items())] or [('{reason="none"}', 0)])
    _block(lines, "facecast_process_resident_bytes", "gauge", "Resident memory of the server process.",
           [("", rss_mib() * 2**20)])
    gpu = _gpu_memory(state.options.device)
    if gpu:
        _block(lines, "facecast_gpu_memory_used_bytes", "gauge", "GPU memory in use (all processes).",
               [(f'{{device="{d}"}}', used) for d, used, _ in gpu])
        _block(lines, "facecast_gpu_memory_total_bytes", "gauge", "GPU memory in all.",
               [(f'{{device="{d}"}}', total) for d, _, total in gpu])
    return "\n".join(lines) + "\n"


def _gpu_memory(device: str) -> list[tuple[str, float, float]]:
    """(device, used bytes, total bytes) per CUDA device when the server runs on CUDA; the
    server only asks once torch is loaded (the live engine loads it), so /metrics stays cheap."""
    if not (device.startswith("cuda") or device == "auto") or "torch" not in sys.modules:
        return []
    torch = sys.modules["torch"]
    try:
        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            out.append((f"cuda:{i}", float(total - free), float(total)))
        return out
    except RuntimeError:
        return []
