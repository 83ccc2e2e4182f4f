"""`facecast serve`: the HTTP API, job queue, web page and live sessions (facecast.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, err, fail, flag_error, number, setup_logging

SERVE_FLAGS = {
    "ServeOptions.host": "--host", "ServeOptions.port": "--port", "ServeOptions.device": "--device",
    "ServeOptions.live_streams": "--live-streams", "ServeOptions.max_upload_mb": "--max-upload-mb",
    "ServeOptions.max_concurrent_jobs": "--max-concurrent-jobs", "ServeOptions.max_jobs_per_token": "--max-jobs-per-token",
    "ServeOptions.max_live_per_token": "--max-live-per-token", "ServeOptions.cors_origins": "--cors-origin",
    "ServeOptions.worker_idle_s": "--worker-idle-s", "ServeOptions.live_size": "--live-size",
    "ServeOptions.live_workers": "--live-workers", "ServeOptions.live_encoders": "--live-encoders",
    "ServeOptions.live_max_late": "--live-max-late",
}


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but loopback needs --token-file."),
    port: int = typer.Option(8000, "--port", parser=number, metavar="INTEGER", help="TCP port (0 = any free port)."),
    data_dir: Path = typer.Option(Path("facecast-data"), "--data-dir", help="Job store, uploads and results (created if missing)."),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="Bearer tokens, one per line (>= 16 characters each)."),
    device: str = typer.Option("cpu", "--device", help="Where jobs render and twins train: cpu, cuda, cuda:N or auto."),
    live_streams: int = typer.Option(4, "--live-streams", parser=number, metavar="INTEGER", help="Most live sessions at once (0 = live off)."),
    max_upload_mb: float = typer.Option(512.0, "--max-upload-mb", help="Largest uploaded file, MiB (413 past it)."),
    max_concurrent_jobs: int = typer.Option(1, "--max-concurrent-jobs", parser=number, metavar="INTEGER",
                                            help="Jobs running at once, each in its own worker process."),
    max_jobs_per_token: int = typer.Option(100, "--max-jobs-per-token", parser=number, metavar="INTEGER",
                                           help="Queued + running jobs per token (429 past it)."),
    max_live_per_token: int = typer.Option(4, "--max-live-per-token", parser=number, metavar="INTEGER",
                                           help="Live sessions per token (429 past it)."),
    live_size: int = typer.Option(512, "--live-size", parser=number, metavar="INTEGER",
                                  help="Width = height of every live session's video, pixels (even, 64-2048)."),
    live_workers: Optional[int] = typer.Option(None, "--live-workers", parser=number, metavar="INTEGER",
                                               help="Live motion worker processes (default: by the machine)."),
    live_encoders: Optional[int] = typer.Option(None, "--live-encoders", parser=number, metavar="INTEGER",
                                                help="Live encoder processes (default: by the machine)."),
    live_max_late: float = typer.Option(0.1, "--live-max-late",
                                        help="Refuse new live sessions while this share of recent frames is late (0-1)."),
    live_preload: bool = typer.Option(False, "--live-preload", help="Start the live engine at start-up, not at the first session."),
    worker_idle_s: float = typer.Option(600.0, "--worker-idle-s", help="A job worker idle this long exits (it holds ~1 GB of models)."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allow this origin by CORS (repeat for more; default: CORS off)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request."),
) -> None:
    """Serve the HTTP API (jobs: say, dub, twin training), the web page and live sessions.
    Loopback by default; docs/serving.md covers tokens, limits and reverse proxies."""
    setup_logging(verbose)
    from ..errors import FacecastError, InputError, OptionError

    try:
        from ..serve.options import ServeOptions
        from ..serve.security import check_security, load_tokens

        try:
            options = ServeOptions(host=host, port=port, data_dir=str(data_dir), device=device,
                                   token_file=None if token_file is None else str(token_file),
                                   live_streams=live_streams, max_upload_mb=max_upload_mb,
                                   max_concurrent_jobs=max_concurrent_jobs, max_jobs_per_token=max_jobs_per_token,
                                   max_live_per_token=max_live_per_token, cors_origins=tuple(cors_origin),
                                   worker_idle_s=worker_idle_s, live_size=live_size, live_workers=live_workers,
                                   live_encoders=live_encoders, live_max_late=live_max_late,
                                   live_preload=live_preload)
        except OptionError as exc:
            raise flag_error(exc, SERVE_FLAGS) from None
        check_security(options)
        if token_file is not None:
            load_tokens(token_file)
        if data_dir.exists() and not data_dir.is_dir():
            raise InputError(f"--data-dir {data_dir}: is a file, not a folder. Choose a folder (it is created if missing).")
        run_server(options, verbose)
    except FacecastError as exc:
        fail(exc)


def run_server(options, verbose: bool) -> None:
    """Bind the socket (so the real port is known with --port 0), print the address, run uvicorn."""
    import socket

    import uvicorn

    from ..errors import InputError
    from ..serve.app import create_app

    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as exc:
        sock.close()
        raise InputError(f"--host {options.host} --port {options.port}: cannot bind ({exc.strerror}). Is another "
                         "server running there? Choose another --port.") from None
    sock.set_inheritable(False)
    app_ = create_app(options)
    port = sock.getsockname()[1]
    shown = f"[{options.host}]" if family == socket.AF_INET6 else options.host
    err.print(f"facecast serve: http://{shown}:{port}  (data in {Path(options.data_dir).resolve()}; "
              f"{'token required' if options.token_file else 'no token: loopback only'}; Ctrl-C stops)",
              highlight=False)
    config = uvicorn.Config(app_, log_level="info" if verbose else "warning", access_log=verbose,
                            timeout_graceful_shutdown=5, proxy_headers=False,
                            ws_max_size=1 << 20)  # the live protocol's largest message is ~96 KB
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C / SIGTERM it stopped on, once it has stopped
        pass
    err.print("facecast serve: stopped (queued and running jobs continue at the next start)", highlight=False)
