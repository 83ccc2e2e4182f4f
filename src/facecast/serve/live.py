"""`WS /v1/live`: a live avatar session over one WebSocket (protocol: serve.live_protocol,
docs/serving-live.md).

One ``LiveSession`` per socket: it waits for ``start``, opens a stream on the server's Engine
(serve.live_hub), then runs two tasks until the end: the *receiver* turns control messages and
PCM frames into the engine's typed input (text is spoken by Piper on the hub's voice threads,
sentence by sentence), and the *pump* drives the stream's clock with the wall clock, reads the
chunks that are ready and sends their fragmented MP4 and the events (first_frame, speaking,
late, ended). Any bad input ends in an error event and a clean close; the engine stream is
removed whatever happens.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect

from .fmp4_info import Fmp4Info
from .live_hub import LiveHub, engine_options
from .live_protocol import CLOSE_ERROR, CLOSE_NORMAL, CLOSE_POLICY, End, Interrupt, ProtocolError, Start, Text, event, \
    parse_control, pcm_audio
from .security import Principal, require_auth
from .state import ServerState, get_state

__all__ = ["LATE_BUDGET_S", "LiveSession", "hub_of", "router", "shutdown", "startup"]

router = APIRouter()

START_TIMEOUT_S = 30.0   # a socket that sends no start within this is closed
LATE_BUDGET_S = 0.2      # a frame is late when sent later than its place in real time after the first + this
JITTER_S = 0.1           # input may arrive this late before its gap is taken as silence (StreamOptions.jitter_s)
MAX_AHEAD_S = 30.0       # most audio the client may send ahead of the clock
BURST_GAP_S = 0.5        # PCM after this long without any starts a new utterance ("speaking" event)
LATE_EVENT_EVERY_S = 1.0


@dataclass
class _Utterance:
    """Input whose first frame the client is waiting for: its frame and when it arrived."""

    frame: int
    received: float
    source: str  # "text" | "audio"
    fed: float   # when its speech reached the engine (after synthesis, for text)


class LiveSession:
    """One socket's session (see the module docstring)."""

    def __init__(self, ws: WebSocket, hub: LiveHub, owner: str) -> None:
        self.ws, self.hub, self.owner = ws, hub, owner
        self.sid: int | None = None
        self.engine = None          # the hub's Engine when this session opened
        self.max_lead_s = 0.25      # StreamOptions.max_lead_s of the stream
        self.start: Start | None = None
        self.t_open = time.monotonic()
        self.t0 = 0.0               # wall time of the stream's time 0
        self.tape_end = 0.0         # seconds of input on the stream's timeline (its own estimate)
        self.clock = 0.0
        self.utterances: list[_Utterance] = []
        self.last_audio = -math.inf
        self.info = Fmp4Info()
        self.t_first: float | None = None
        self.late = 0
        self.late_reported = 0
        self.last_late_event = 0.0
        self.ended = False          # the client sent "end"
        self.generation = 0         # bumped by interrupt: synthesis of older text is dropped
        self.texts: asyncio.Queue = asyncio.Queue()
        self._send_lock = asyncio.Lock()

    # -- sending ------------------------------------------------------------------------------

    async def send_event(self, kind: str, **fields) -> None:
        async with self._send_lock:
            await self.ws.send_text(event(kind, **fields))

    async def send_bytes(self, data: bytes) -> None:
        async with self._send_lock:
            await self.ws.send_bytes(data)

    async def fail(self, code: str, message: str, close_code: int) -> None:
        """An error event with the one-line message, then the close (the socket may be gone)."""
        self.hub.count("errors")
        try:
            await self.send_event("error", code=code, message=message.splitlines()[0] if message else code)
            await self.ws.close(close_code, reason=code[:120])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    # -- the session ----------------------------------------------------------------------------

    async def run(self) -> None:
        acquired = False
        try:
            self.start = await self._wait_start()
            self.hub.acquire(self.owner)
            acquired = True
            await self._open()
            await self._serve()
        except ProtocolError as exc:
            await self.fail(exc.code, exc.message, exc.close_code)
        except WebSocketDisconnect:
            pass
        except Exception as exc:  # the session failed inside the server: said on the socket, not a crash
            from ..errors import FacecastError

            msg = str(exc) if isinstance(exc, FacecastError) else f"{type(exc).__name__}: {exc}"
            await self.fail("session_failed", msg, CLOSE_ERROR)
        finally:
            if self.sid is not None:
                sid, self.sid = self.sid, None
                try:
                    await self.hub.call(self.engine.remove, sid)
                except (KeyError, RuntimeError):
                    pass  # already gone (finished, or the engine failed / shut down)
            if acquired:
                self.hub.release(self.owner)

    async def _wait_start(self) -> Start:
        try:
            msg = await asyncio.wait_for(self.ws.receive(), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ProtocolError("no_start", f"no start message within {START_TIMEOUT_S:.0f} s") from None
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        if msg.get("bytes") is not None:
            raise ProtocolError("audio_before_start", "audio before the start message: send "
                                                      '{"type": "start", "face_id": ...} first')
        first = parse_control(msg.get("text") or "")
        if not isinstance(first, Start):
            raise ProtocolError("not_started", f"{type(first).__name__.lower()} before the start message: send "
                                               '{"type": "start", "face_id": ...} first')
        size = self.hub.engine_opts.size
        if first.size is not None and first.size != size:
            raise ProtocolError("bad_field", f"start: size {first.size} is not this server's live size {size} "
                                             "(ServeOptions.live_size); leave size out or send that")
        return first

    async def _open(self) -> None:
        from ..options import EncodeOptions, StreamOptions

        s = self.start
        prepared = await self.hub.call(self.hub.prepare, s.face_id, self.owner)
        options = StreamOptions(size=self.hub.engine_opts.size, fps=float(s.fps), realtime=True, fmp4=True,
                                jitter_s=JITTER_S, chunk_frames=s.fragment_frames, fragment_frames=s.fragment_frames,
                                encode=EncodeOptions(preset="veryfast"))
        self.max_lead_s = options.max_lead_s
        engine = self.engine = await self.hub.call(lambda: self.hub.engine)
        self.sid = await self.hub.call(engine.add, prepared, options)
        self.lookahead_s = engine.lookahead_s(self.sid)
        self.t0 = time.monotonic()
        await self.send_event("started", session=self.sid, size=self.hub.engine_opts.size, fps=s.fps,
                              sample_rate=s.sample_rate, lookahead_s=round(self.lookahead_s, 3),
                              fragment_frames=s.fragment_frames, ms=round((self.t0 - self.t_open) * 1000, 1))

    async def _serve(self) -> None:
        tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._pump()),
                 asyncio.create_task(self._speak())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # raises the first failure (ProtocolError, disconnect, session error)
            # the pump finished: the session ended
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- input ---------------------------------------------------------------------------------

    async def _receive(self) -> None:
        """Control messages and PCM -> the engine, until the client ends or goes away."""
        engine = self.engine
        max_bytes = 2 * self.start.sample_rate
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(msg.get("code", 1000))
            now = time.monotonic()
            if self.ended:
                raise ProtocolError("after_end", "input after the end message")
            if msg.get("bytes") is not None:
                from ..live.messages import AudioIn

                audio = pcm_audio(msg["bytes"], self.start.sample_rate, max_bytes)
                d = audio.num_samples / audio.sample_rate
                if self.tape_end - self.clock > MAX_AHEAD_S:
                    raise ProtocolError("too_fast", f"audio arrives faster than real time ({self.tape_end - self.clock:.0f}"
                                                    f" s ahead of the clock; at most {MAX_AHEAD_S:.0f} s)")
                self._placed(d, "audio", now, new=now - self.last_audio > BURST_GAP_S)
                self.last_audio = now
                await self.hub.call(engine.feed, self.sid, AudioIn(audio))
                continue
            message = parse_control(msg.get("text") or "")
            if isinstance(message, Start):
                raise ProtocolError("already_started", "a second start message; one session per socket")
            if isinstance(message, Text):
                await self.texts.put((self.generation, message.text, now))
            elif isinstance(message, Interrupt):
                from ..live.messages import INTERRUPT

                self.generation += 1
                while not self.texts.empty():
                    self.texts.get_nowait()
                await self.hub.call(engine.feed, self.sid, INTERRUPT)
                self.utterances.clear()
                # the session cuts its input at its next frame, at most max_lead_s past the clock
                self.tape_end = self.clock + self.max_lead_s
                await self.send_event("interrupted", frame=self.info.frames)
            elif isinstance(message, End):
                self.ended = True
                await self.texts.put(None)  # the speaker ends the input after what is queued

    async def _speak(self) -> None:
        """Text messages -> sentences -> Piper (voice threads) -> SpeechIn, in order."""
        from ..live.messages import EndInput, SpeechIn
        from ..live.text import SentenceSplitter

        engine, loop = self.engine, asyncio.get_running_loop()
        while True:
            item = await self.texts.get()
            if item is None:
                await self.hub.call(engine.feed, self.sid, EndInput())
                await asyncio.Event().wait()  # the pump ends the session
            gen, text, received = item
            splitter = SentenceSplitter()
            first = True
            for sentence in splitter.feed(text + "\n") + splitter.flush():
                voiced = await loop.run_in_executor(self.hub.voice_pool, self.hub.synthesize, sentence)
                if gen != self.generation:
                    break  # interrupted meanwhile
                for v in voiced:
                    if gen != self.generation:
                        break
                    self._placed(v.audio.num_samples / v.audio.sample_rate, "text", received, new=first)
                    first = False
                    await self.hub.call(engine.feed, self.sid, SpeechIn(v.audio, v.phones))

    def _placed(self, seconds: float, source: str, received: float, new: bool) -> None:
        """Input of ``seconds`` joins the timeline (back to back, after the silence the clock filled)."""
        start = max(self.tape_end, self.clock)
        if new:
            self.utterances.append(_Utterance(int(math.floor(start * self.start.fps + 1e-9)), received, source,
                                              time.monotonic()))
        self.tape_end = start + seconds

    # -- output --------------------------------------------------------------------------------

    async def _pump(self) -> None:
        """The clock, the chunks, the bytes and events, until the stream is done."""
        engine = self.engine
        fps = float(self.start.fps)
        tick = min(0.04, 1.0 / fps)
        sent_media = False
        while True:
            now = time.monotonic()
            self.clock = max(self.clock, now - self.t0 - JITTER_S)
            await self.hub.call(engine.advance_to, self.sid, self.clock)  # a twin's session works here
            chunks = engine.read(self.sid)  # read and done only take the outbox's lock: no thread hop
            data = b"".join(c.fmp4 or b"" for c in chunks)
            if data:
                frames0 = self.info.frames
                n = self.info.feed(data)
                if not sent_media:
                    await self.send_event("media", mime=self.info.mime)
                    sent_media = True
                await self.send_bytes(data)
                if n:
                    await self._frames_sent(frames0, n, fps)
            if engine.done(self.sid):
                await self.send_event("ended", frames=self.info.frames, late_frames=self.late,
                                      seconds=round(self.info.frames / fps, 3))
                await self.ws.close(CLOSE_NORMAL)
                return
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - now)))

    async def _frames_sent(self, f0: int, n: int, fps: float) -> None:
        t = time.monotonic()
        if self.t_first is None:
            self.t_first = t
            ms = (t - self.t_open) * 1000
            self.hub.count("first_frame_ms_sum", ms)
            self.hub.count("first_frame_count")
            await self.send_event("first_frame", ms=round(ms, 1), frame=f0)
        late = sum(1 for k in range(n) if t > self.t_first + (f0 + k) / fps + LATE_BUDGET_S)
        self.late += late
        self.hub.frames(n, late)
        if self.late > self.late_reported and t - self.last_late_event >= LATE_EVENT_EVERY_S:
            await self.send_event("late", frames=self.late - self.late_reported, total=self.late)
            self.late_reported, self.last_late_event = self.late, t
        while self.utterances and self.utterances[0].frame < f0 + n:
            u = self.utterances.pop(0)
            await self.send_event("speaking", source=u.source, frame=u.frame, ms=round((t - u.received) * 1000, 1),
                                  input_ms=round((u.fed - u.received) * 1000, 1))


# -- the app's side: one hub per server state -------------------------------------------------

_HUBS: dict[int, LiveHub] = {}  # id(ServerState) -> its hub, from startup to shutdown


def hub_of(state: ServerState) -> LiveHub | None:
    """The live hub of a running server (None before start-up / after shut-down)."""
    return _HUBS.get(id(state))


def _resolver(state: ServerState):
    def resolve(face_id: str, owner: str):
        from ..errors import InputError

        face = state.store.get_face(face_id)
        if face is None or face.owner != owner:
            raise KeyError(face_id)
        if face.kind == "video":
            raise InputError("a video: live sessions take a portrait or a twin (train a twin from the video "
                             "with a twin_train job, then use the twin)")
        return state.store.face_path(face)

    return resolve


async def startup(state: ServerState) -> None:
    """The app's start: the hub (the Engine itself starts with the first session)."""
    o = state.options
    opts = engine_options(o.live_size, o.device, o.live_workers, o.live_encoders)
    hub = _HUBS[id(state)] = LiveHub(opts, state.live, _resolver(state), state.metrics, o.live_max_late)
    if o.live_preload and o.live_streams > 0:
        asyncio.get_running_loop().run_in_executor(hub.pool, hub.start)  # errors surface at the first session


async def shutdown(state: ServerState) -> None:
    hub = _HUBS.pop(id(state), None)
    if hub is not None:
        await asyncio.get_running_loop().run_in_executor(None, hub.close)


@router.websocket("/v1/live")
async def live_socket(ws: WebSocket, principal: Principal = Depends(require_auth),
                      state: ServerState = Depends(get_state)) -> None:
    """A live avatar session (protocol: docs/serving-live.md)."""
    await ws.accept()
    hub = hub_of(state)
    if hub is None:
        await ws.send_text(event("error", code="live_off", message="live sessions are not running on this server"))
        await ws.close(CLOSE_POLICY)
        return
    await LiveSession(ws, hub, principal.id).run()
