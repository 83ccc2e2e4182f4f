"""The page's files: served from a fixed list (no client path reaches the filesystem), with a
CSP that keeps the page to facecast's own origin; every file the page references exists."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from facecast.serve.app import create_app
from facecast.serve.options import ServeOptions
from facecast.serve.page import STATIC_DIR, STATIC_FILES


def test_page_files_and_nothing_else(tmp_path):
    with TestClient(create_app(ServeOptions(data_dir=str(tmp_path / "data"), live_streams=0))) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for name, kind in STATIC_FILES.items():
            r = client.get(f"/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"] == kind
        for bad in ("nope.js", "..%2Foptions.py", "%2e%2e%2fapp.py", "static/app.js"):
            r = client.get(f"/static/{bad}")
            assert r.status_code == 404 and "Traceback" not in r.text, bad
    # Every local reference in the page is one of the served files; nothing from another origin.
    html = (STATIC_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith("/static/") and r[8:] in STATIC_FILES or r == "data:," for r in refs), refs
    for js in ("app.js", "live.js"):
        assert "http://" not in (STATIC_DIR / js).read_text() and "https://" not in (STATIC_DIR / js).read_text()
    assert sorted(p.name for p in STATIC_DIR.iterdir()) == sorted(STATIC_FILES)
