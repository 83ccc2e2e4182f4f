"""The web page at `/`: Create (jobs) and Live (avatars over `WS /v1/live`) tabs.

Plain HTML, CSS and JavaScript under ``serve/static/`` (no build step, no CDN: the page loads
nothing that facecast does not serve). ``GET /`` is the page, ``GET /static/{name}`` its files;
neither needs a token (they hold no data: the page asks for the token when the API does).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

__all__ = ["STATIC_DIR", "STATIC_FILES", "router"]

router = APIRouter()

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "pcm-worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""Every file the page serves (a fixed list: no client path reaches the filesystem)."""

_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
                                       "connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'"}


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type=STATIC_FILES["index.html"], headers=_HEADERS)


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no page file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_HEADERS)
