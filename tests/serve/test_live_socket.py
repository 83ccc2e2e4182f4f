"""WS /v1/live against a real uvicorn server (Python websockets client): a session's fMP4 decodes
to the frames and sound it announced; bad input on the socket is an error event with a specific
code and a clean close, never a crash; limits per server and per token; the token on sockets."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import numpy as np
import pytest
import websockets

from browser_helpers import Server
from conftest import media
from facecast.serve.live_protocol import CLOSE_BUSY, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOKEN_LIMIT, CLOSE_TOO_BIG

TOKENS = ["token-aaaaaaaaaaaaaaaaaaaa", "token-bbbbbbbbbbbbbbbbbbbb", "token-cccccccccccccccccccc"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from facecast.serve.options import ServeOptions

    tmp = tmp_path_factory.mktemp("live")
    (tmp / "tokens").write_text("\n".join(TOKENS) + "\n")
    s = Server(ServeOptions(port=0, data_dir=str(tmp / "data"), token_file=str(tmp / "tokens"), live_size=128,
                            live_streams=2, max_live_per_token=1, live_preload=True,
                            live_max_late=1.0))  # admission by lateness: its own test (a loaded CPU runs late)
    yield s
    s.stop()


def upload(server, rel: str, token: str = TOKENS[0]) -> str:
    path = media(rel)
    with open(path, "rb") as f:
        r = httpx.post(server.url + "/v1/faces", files={"face": (path.name, f)},
                       headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def face(server):
    return upload(server, "portrait/sam_512.jpg")


def ws_url(server, token: str | None = TOKENS[0]) -> str:
    return server.url.replace("http", "ws") + "/v1/live" + (f"?token={token}" if token else "")


async def session(url: str, messages: list, until: str = "ended", timeout: float = 120):
    """Send ``messages`` (dicts as JSON, str as text, bytes as binary; "wait:EVENT" waits for that event),
    collect everything until the ``until`` event / the close: (events, media bytes, close code)."""
    events, data = [], bytearray()
    async with websockets.connect(url, max_size=None) as ws:
        async def reader():
            try:
                async for m in ws:
                    if isinstance(m, bytes):
                        data.extend(m)
                    else:
                        events.append(json.loads(m))
            except websockets.ConnectionClosed:
                pass

        task = asyncio.create_task(reader())
        for m in messages:
            if isinstance(m, str) and m.startswith("wait:"):
                while not any(e["type"] == m[5:] for e in events):
                    if task.done():
                        break
                    await asyncio.sleep(0.02)
            else:
                await ws.send(json.dumps(m) if isinstance(m, dict) else m)
        await asyncio.wait_for(task, timeout)
        return events, bytes(data), ws.close_code


def run(coro):
    return asyncio.run(coro)


def error_of(events) -> dict:
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1, events
    assert "\n" not in errors[0]["message"] and "Traceback" not in errors[0]["message"]
    return errors[0]


def test_a_session_speaks_and_its_mp4_decodes(server, face):
    import av

    events, data, code = run(session(ws_url(server), [
        {"type": "start", "face_id": face}, "wait:first_frame",
        {"type": "text", "text": "Hello there."}, "wait:speaking", {"type": "end"}]))
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["started", "media", "first_frame"] and kinds[-1] == "ended" and "speaking" in kinds
    assert code == CLOSE_NORMAL
    ended = events[-1]
    assert ended["frames"] >= 25 * 0.7  # at least the sentence
    with av.open(io.BytesIO(data)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.width, v.height) == ("h264", 128, 128)
        assert c.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(frames) == ended["frames"]
    assert np.std([f.mean() for f in frames]) < 10 and np.ptp(np.stack(frames), axis=0).max() > 30  # a face that moves


@pytest.mark.parametrize("messages, code, close", [
    ([b"\x00\x01" * 100], "audio_before_start", CLOSE_POLICY),
    (["{oops"], "bad_json", CLOSE_POLICY),
    ([{"type": "text", "text": "Hi."}], "not_started", CLOSE_POLICY),
    ([{"type": "dance"}], "unknown_type", CLOSE_POLICY),
    ([{"type": "start", "face_id": "f_0000000000000000000a"}], "unknown_face", CLOSE_POLICY),
    ([{"type": "start", "face_id": "FACE", "sample_rate": 4000}], "bad_field", CLOSE_POLICY),
    ([{"type": "start", "face_id": "FACE", "size": 512}], "bad_field", CLOSE_POLICY),
    ([{"type": "start", "face_id": "FACE", "fps": 25, "extra": 1}], "unknown_field", CLOSE_POLICY),
])
def test_bad_input_before_the_session(server, face, messages, code, close):
    messages = [json.loads(json.dumps(m).replace("FACE", face)) if isinstance(m, dict) else m for m in messages]
    events, data, got = run(session(ws_url(server), messages))
    assert error_of(events)["code"] == code and got == close and not data


@pytest.mark.parametrize("bad, code, close", [
    (b"\x00" * 3001, "bad_audio", CLOSE_POLICY),       # an odd byte count is not 16-bit PCM
    (b"\x00" * 64002, "too_big", CLOSE_TOO_BIG),       # > 1 s at 16 kHz in one frame
    ({"type": "start", "face_id": "FACE"}, "already_started", CLOSE_POLICY),
    ({"type": "text", "text": "x" * 3000}, "too_big", CLOSE_TOO_BIG),
])
def test_bad_input_during_the_session(server, face, bad, code, close):
    if isinstance(bad, dict):
        bad = json.loads(json.dumps(bad).replace("FACE", face))
    events, _, got = run(session(ws_url(server), [{"type": "start", "face_id": face}, "wait:first_frame", bad]))
    assert error_of(events)["code"] == code and got == close
    assert events[0]["type"] == "started"


def test_audio_faster_than_real_time_is_refused(server, face):
    second = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220) * 8000).astype("<i2").tobytes()
    events, _, code = run(session(ws_url(server), [{"type": "start", "face_id": face}, "wait:started"]
                                  + [second] * 40))
    assert error_of(events)["code"] == "too_fast" and code == CLOSE_POLICY


def test_a_socket_without_start_is_closed(server, monkeypatch):
    from facecast.serve import live

    monkeypatch.setattr(live, "START_TIMEOUT_S", 0.5)
    events, _, code = run(session(ws_url(server), []))
    assert error_of(events)["code"] == "no_start" and code == CLOSE_POLICY


def test_a_video_face_is_refused_with_what_to_do(server):
    vid = upload(server, "video/may_en.mp4")
    events, _, code = run(session(ws_url(server), [{"type": "start", "face_id": vid}]))
    e = error_of(events)
    assert e["code"] == "bad_face" and "twin" in e["message"] and code == CLOSE_POLICY


def test_another_tokens_face_is_unknown(server, face):
    events, _, _ = run(session(ws_url(server, TOKENS[1]), [{"type": "start", "face_id": face}]))
    assert error_of(events)["code"] == "unknown_face"


def test_sockets_need_the_token(server):
    with pytest.raises(websockets.InvalidStatus):
        run(session(ws_url(server, None), [{"type": "end"}]))
    with pytest.raises(websockets.InvalidStatus):
        run(session(ws_url(server, "token-wrong-wrong-wrong-wrong"), [{"type": "end"}]))


def test_limits_per_token_and_per_server_and_a_client_that_vanishes(server, face):
    """live_streams=2, max_live_per_token=1: a token's second session closes 4429, a third
    token's 1013; a client that goes away mid-session frees its slot."""
    face_b = upload(server, "portrait/sam_512.jpg", TOKENS[1])

    async def opened(token: str, face_id: str):
        ws = await websockets.connect(ws_url(server, token), max_size=None)
        await ws.send(json.dumps({"type": "start", "face_id": face_id}))
        while True:
            m = await ws.recv()
            if isinstance(m, str) and json.loads(m)["type"] == "started":
                return ws

    async def scenario():
        a = await opened(TOKENS[0], face)
        same = await session(ws_url(server, TOKENS[0]), [{"type": "start", "face_id": face}])
        b = await opened(TOKENS[1], face_b)
        third = await session(ws_url(server, TOKENS[2]), [{"type": "start", "face_id": face}])
        await a.close()                 # a polite client
        b.transport.abort()             # a client that vanishes
        await asyncio.sleep(1.5)
        again = await session(ws_url(server, TOKENS[0]), [{"type": "start", "face_id": face}, "wait:first_frame",
                                                          {"type": "end"}])
        return same, third, again

    same, third, again = run(scenario())
    assert error_of(same[0])["code"] == "token_limit" and same[2] == CLOSE_TOKEN_LIMIT
    assert error_of(third[0])["code"] == "busy" and third[2] == CLOSE_BUSY
    assert again[0][-1]["type"] == "ended" and again[2] == CLOSE_NORMAL
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKENS[0]}"}).text
    assert "facecast_live_sessions 0" in metrics
    assert 'facecast_requests_refused_total{reason="live_sessions"} 2' in metrics


@pytest.mark.slow
def test_a_twin_face_streams_through_the_server(server, tiny_twin):
    """An uploaded .twin (told by its content) runs as a live twin session: its frames are the
    twin's size (scaled to live_size at most) and the mouth model follows the text."""
    import av

    path = tiny_twin[0]
    with open(path, "rb") as f:
        r = httpx.post(server.url + "/v1/faces", files={"face": ("may.bin", f)},
                       headers={"Authorization": f"Bearer {TOKENS[0]}"}, timeout=120)
    assert r.status_code == 201 and r.json()["kind"] == "twin", r.text
    events, data, code = run(session(ws_url(server), [
        {"type": "start", "face_id": r.json()["id"]}, "wait:first_frame",
        {"type": "text", "text": "Hello."}, "wait:speaking", {"type": "end"}]))
    assert events[-1]["type"] == "ended" and code == CLOSE_NORMAL, events
    with av.open(io.BytesIO(data)) as c:
        v = c.streams.video[0]
        assert max(v.width, v.height) <= 128
        assert sum(1 for _ in c.decode(video=0)) == events[-1]["frames"]


def test_no_new_session_while_the_running_ones_are_late(server, face, monkeypatch):
    """Admission by lateness: while the running sessions' recent frames are late beyond
    live_max_late, a new session is refused (overloaded, 1013) instead of slowing them further."""
    from facecast.serve.live import hub_of

    hub = hub_of(server.app.state.facecast)
    monkeypatch.setattr(hub, "max_late", 0.1)
    face_b = upload(server, "portrait/sam_512.jpg", TOKENS[1])

    async def scenario():
        async with websockets.connect(ws_url(server, TOKENS[0]), max_size=None) as a:
            await a.send(json.dumps({"type": "start", "face_id": face}))
            while not (isinstance(m := await a.recv(), str) and json.loads(m)["type"] == "first_frame"):
                pass
            hub.frames(1000, 500)  # as if the running session had just sent half its frames late
            return await session(ws_url(server, TOKENS[1]), [{"type": "start", "face_id": face_b}])

    events, _, code = run(scenario())
    e = error_of(events)
    assert e["code"] == "overloaded" and "behind real time" in e["message"] and code == CLOSE_BUSY
    deadline = time.monotonic() + 10
    while hub.slots.open_sessions and time.monotonic() < deadline:  # A's slot, freed as its socket closes
        time.sleep(0.05)
    assert hub.slots.open_sessions == 0  # and the refused one never kept its slot


def test_a_dead_engine_process_fails_its_sessions_not_the_server(server, face):
    """kill -9 of the engine's motion worker mid-session: that session gets an error event and
    close 1011; the server stays up, and the next session runs on a new engine."""
    import os
    import signal

    from facecast.serve.live import hub_of
    from facecast.serve.live_protocol import CLOSE_ERROR

    hub = hub_of(server.app.state.facecast)

    async def scenario():
        async with websockets.connect(ws_url(server), max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "face_id": face}))
            got = []
            try:
                async for m in ws:
                    if isinstance(m, str):
                        got.append(json.loads(m))
                        if got[-1]["type"] == "first_frame":
                            os.kill(hub.engine.pids[0], signal.SIGKILL)  # the motion worker this test's server started
            except websockets.ConnectionClosed:
                pass
            return got, ws.close_code

    events, code = run(scenario())
    e = error_of(events)
    assert e["code"] == "session_failed" and "worker" in e["message"] and code == CLOSE_ERROR
    assert httpx.get(server.url + "/healthz").status_code == 200
    again = run(session(ws_url(server), [{"type": "start", "face_id": face}, "wait:first_frame", {"type": "end"}]))
    assert again[0][-1]["type"] == "ended" and again[2] == CLOSE_NORMAL
    assert hub.metrics()["engine_restarts"] == 1
