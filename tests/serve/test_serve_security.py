"""Security: loopback without a token, tokens everywhere else (constant-time checked, header /
query / cookie, HTTP and WebSocket), per-token isolation and limits, CORS off by default."""

from __future__ import annotations

import pytest
from fastapi import Depends, WebSocket
from serve_helpers import HI, portrait, serve, submit
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

from facecast.errors import InputError
from facecast.serve import ServeOptions, create_app
from facecast.serve.options import is_loopback
from facecast.serve.security import Principal, require_auth
from facecast.serve.state import LiveSlots

TOKEN_A = "a" * 24
TOKEN_B = "b-token-0123456789abcdef"

FIXTURES = (portrait,)  # imported fixtures: pytest finds them by name


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(f"# the team's tokens\n{TOKEN_A}\n\n{TOKEN_B}\n")
    return path


def test_loopback_detection():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com", "10.0.0.1"))


def test_non_loopback_without_token_is_refused(tmp_path):
    with pytest.raises(InputError, match="--token-file"):
        create_app(ServeOptions(host="0.0.0.0", data_dir=str(tmp_path / "d")))
    assert not (tmp_path / "d").exists()  # refused before anything was created
    from facecast.cli import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output and "Traceback" not in result.output
    bad = tmp_path / "short.txt"
    bad.write_text("tooshort\n")
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--token-file", str(bad)])
    assert result.exit_code == 2 and "too short" in result.output
    result = CliRunner().invoke(app, ["serve", "--port", "99999"])
    assert result.exit_code == 2 and "--port 99999" in result.output


@pytest.mark.parametrize("flag, value", [("--live-size", "63"), ("--live-size", "513"), ("--live-size", "nan"),
                                         ("--live-workers", "-1"), ("--live-encoders", "0"),
                                         ("--live-max-late", "1.5"), ("--live-streams", "2000"),
                                         ("--max-upload-mb", "-1"), ("--worker-idle-s", "inf")])
def test_numeric_serve_flags_are_refused_out_of_range(tmp_path, flag, value):
    """Every numeric flag of `facecast serve` has a range: one error line naming the flag, exit 2,
    no data folder made, no server started."""
    from facecast.cli import app

    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "d"), flag, value])
    assert result.exit_code == 2, result.output
    assert f"{flag} " in result.output and "must be" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def test_tokens_are_required_and_checked(tmp_path, tokens, portrait):
    with serve(tmp_path / "data", host="0.0.0.0", token_file=str(tokens)) as c:
        assert c.get("/healthz").status_code == 200  # for load balancers
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN_A}"},
                        {"Authorization": f"Bearer {TOKEN_A[:-1]}"}):
            r = c.get("/v1/jobs", headers=headers)
            assert r.status_code == 401 and "token" in r.json()["error"], headers
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics").status_code == 401
        assert c.post("/v1/faces", files={"face": ("p.jpg", portrait)}).status_code == 401
        assert list((tmp_path / "data" / "tmp").iterdir()) == []
        ok = {"Authorization": f"Bearer {TOKEN_A}"}
        assert c.get("/v1/jobs", headers=ok).status_code == 200
        assert c.get("/v1/jobs", params={"token": TOKEN_A}).status_code == 200
        c.cookies.set("facecast_token", TOKEN_B)
        assert c.get("/v1/jobs").status_code == 200
        c.cookies.clear()

        # each token sees only its own jobs and faces
        face = c.post("/v1/faces", files={"face": ("p.jpg", portrait)}, headers=ok).json()["id"]
        job = submit(c, HI, data={"face_id": face}, headers=ok).json()["id"]
        other = {"Authorization": f"Bearer {TOKEN_B}"}
        assert c.get(f"/v1/jobs/{job}", headers=other).status_code == 404
        assert c.delete(f"/v1/jobs/{job}", headers=other).status_code == 404
        assert c.get(f"/v1/jobs/{job}/result", headers=other).status_code == 404
        assert c.get("/v1/jobs", headers=other).json()["jobs"] == []
        assert c.get("/v1/faces", headers=other).json()["faces"] == []
        r = submit(c, HI, data={"face_id": face}, headers=other)
        assert r.status_code == 422 and "face_id" in r.json()["error"]
        assert c.delete(f"/v1/jobs/{job}", headers=ok).json()["status"] == "cancelled"


def test_websocket_auth(tmp_path, tokens):
    app = create_app(ServeOptions(data_dir=str(tmp_path / "data"), token_file=str(tokens)))

    @app.websocket("/ws-probe")
    async def probe(ws: WebSocket, principal: Principal = Depends(require_auth)):
        await ws.accept()
        await ws.send_json({"who": principal.id})
        await ws.close()

    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        with pytest.raises(WebSocketDisconnect) as refused:
            with c.websocket_connect("/ws-probe") as ws:
                ws.receive_json()
        assert refused.value.code == 1008
        with c.websocket_connect(f"/ws-probe?token={TOKEN_A}") as ws:
            a = ws.receive_json()["who"]
        with c.websocket_connect("/ws-probe", headers={"Authorization": f"Bearer {TOKEN_B}"}) as ws:
            b = ws.receive_json()["who"]
        c.cookies.set("facecast_token", TOKEN_A)
        with c.websocket_connect("/ws-probe") as ws:
            assert ws.receive_json()["who"] == a
        assert a != b and TOKEN_A not in a and len(a) == 16


def test_cors_is_off_unless_configured(tmp_path):
    with serve(tmp_path / "a") as c:
        r = c.get("/v1/jobs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        pre = c.options("/v1/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers
    with serve(tmp_path / "b", cors_origins=("https://app.example",)) as c:
        r = c.get("/v1/jobs", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.get("/v1/jobs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_jobs_per_token_limit_is_429(tmp_path, portrait):
    with serve(tmp_path / "data", max_jobs_per_token=2) as c:
        face = c.post("/v1/faces", files={"face": ("p.jpg", portrait)}).json()["id"]
        long = {**HI, "text": "A sentence that keeps the worker busy for a while, long enough for the test."}
        ids = [submit(c, long, data={"face_id": face}).json()["id"] for _ in range(2)]
        r = submit(c, long, data={"face_id": face})
        assert r.status_code == 429 and "--max-jobs-per-token" in r.json()["error"]
        assert r.headers["retry-after"] == "5"
        assert 'reason="jobs_per_token"' in c.get("/metrics").text
        assert len(list((tmp_path / "data" / "jobs").iterdir())) == 2
        c.delete(f"/v1/jobs/{ids[1]}")  # cancelling one frees a slot
        assert submit(c, long, data={"face_id": face}).status_code == 201


def test_live_slots():
    slots = LiveSlots(total=3, per_token=2)
    assert slots.try_open("a") and slots.try_open("a") and not slots.try_open("a")
    assert slots.try_open("b") and not slots.try_open("c")  # 3 in all
    slots.close("a")
    assert slots.open_sessions == 2 and slots.try_open("c")
