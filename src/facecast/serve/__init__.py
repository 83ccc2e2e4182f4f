"""facecast serve: the HTTP API, the job store and queue, and (from serve/live.py, serve/page.py)
live sessions and the web page. FastAPI lives only in this package.

    from facecast.serve import ServeOptions, create_app
    app = create_app(ServeOptions(data_dir="facecast-data"))

Modules: options (ServeOptions), app (create_app), state (ServerState on app.state.facecast,
LiveSlots, Metrics), security (tokens, require_auth), store (SQLite job store, folders), uploads
(streamed multipart), probe (file types from content), specs (request/response models), kinds
(spec -> options -> Python API), jobs (JobRunner), worker (the job worker process), routes_jobs,
routes_faces, routes_system, openapi. docs/serving.md is the guide.

Importing this package is cheap: ``create_app`` loads FastAPI on first use.
"""

from .options import ServeOptions

__all__ = ["ServeOptions", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'facecast.serve' has no attribute {name!r}")
