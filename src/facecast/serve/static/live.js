// facecast page: the Live tab. A WebSocket to /v1/live (docs/serving-live.md): JSON control
// messages and 16 kHz int16 PCM out, fragmented MP4 (played through Media Source Extensions)
// and JSON events in.
"use strict";

const L = (window.facecast.live = {
  ws: null, ms: null, sb: null, queue: [], started: false, errored: false, ended: false,
  fps: 25, t_start: 0, ttff_page: null, speech: null, mic: null, frames_seen: 0,
  events: [],  // every event of the session, in order (for the curious and for the tests)
});
const video = $("live-video");
const LIVE_EDGE_S = 0.6;   // more buffered ahead than this: jump to the live edge
const KEEP_BEHIND_S = 20;  // media older than this behind the playhead is removed

function liveState(text) { $("live-state").textContent = text; }
function liveError(text) { $("live-error").textContent = text; }
function controls(running) {
  for (const id of ["live-text", "live-say", "live-mic", "live-interrupt", "live-end"]) $(id).disabled = !running;
  $("live-connect").disabled = running;
  $("live-face").disabled = running;
}

document.addEventListener("facecast:faces", () => {
  if (!$("live-face").options.length) liveState("upload a portrait or train a twin first (Create tab)");
  else if (!L.ws) liveState("not started");
});

$("live-connect").addEventListener("click", start);
$("live-end").addEventListener("click", () => send({ type: "end" }));
$("live-interrupt").addEventListener("click", () => {
  send({ type: "interrupt" });
  L.speech = null;
});
$("live-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("live-text").value.trim();
  if (!text) return;
  send({ type: "text", text });
  L.speech = { sent: performance.now(), frame: null };
  $("live-speak").textContent = "...";
  $("live-text").value = "";
});
$("live-mic").addEventListener("click", () => (L.mic ? stopMic() : startMic()));

function send(message) {
  if (L.ws && L.ws.readyState === WebSocket.OPEN) L.ws.send(JSON.stringify(message));
}

function start() {
  const face = $("live-face").value;
  liveError("");
  if (!face) { liveError("no face to animate: upload a portrait or train a twin first (Create tab)"); return; }
  Object.assign(L, { events: [], queue: [], sb: null, started: false, errored: false, ended: false, ttff_page: null,
                     speech: null, frames_seen: 0, fps: Number($("live-fps").value) });
  for (const id of ["live-ttff", "live-speak"]) $(id).textContent = "-";
  $("live-late").textContent = "0";
  // Safari on iOS has only ManagedMediaSource (untested here: docs/serving-live.md).
  const Source = window.MediaSource || window.ManagedMediaSource;
  if (!Source) { liveError("this browser has no Media Source Extensions: it cannot play live video"); return; }
  L.ms = new Source();
  if (!window.MediaSource) video.disableRemotePlayback = true;
  video.src = URL.createObjectURL(L.ms);
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = (L.ws = new WebSocket(scheme + location.host + "/v1/live"));
  ws.binaryType = "arraybuffer";
  controls(true);
  $("live-text").disabled = $("live-say").disabled = $("live-mic").disabled = $("live-interrupt").disabled = true;
  liveState("connecting ...");
  ws.onopen = () => {
    L.t_start = performance.now();
    ws.send(JSON.stringify({ type: "start", face_id: face, fps: L.fps, sample_rate: 16000 }));
    liveState("starting (the first session starts the engine: a few seconds) ...");
  };
  ws.onmessage = (ev) => (typeof ev.data === "string" ? onEvent(JSON.parse(ev.data)) : onMedia(ev.data));
  ws.onclose = (ev) => {
    stopMic();
    controls(false);
    if (!L.started && !L.errored) liveError("the server refused the session (close " + ev.code + ")" +
      (ev.code === 1006 || ev.code === 1008 ? ": is a token needed?" : ""));
    if (!L.ended && !L.errored) liveState("closed (" + ev.code + ")");
    L.ws = null;
    endOfStream();
  };
  video.play().catch(() => {});  // the click allows sound; playback starts when media arrives
  watchFrames();
}

function onEvent(e) {
  e.at = performance.now();
  L.events.push(e);
  switch (e.type) {
    case "started":
      L.started = true;
      liveState("running (session " + e.session + ", " + e.size + "x" + e.size + " at " + e.fps + " fps)");
      controls(true);
      break;
    case "media":
      openSourceBuffer(e.mime);
      break;
    case "first_frame":
      $("live-ttff").textContent = Math.round(e.ms) + " ms (server)" + (L.ttff_page != null ? ", " + L.ttff_page + " ms shown" : "");
      L.ttff_server = e.ms;
      break;
    case "speaking":
      if (L.speech && L.speech.frame == null) L.speech.frame = e.frame;
      $("live-speak").textContent = Math.round(e.ms) + " ms (server)";
      L.speak_server = e.ms;
      break;
    case "late":
      $("live-late").textContent = String(e.total);
      break;
    case "interrupted":
      break;
    case "error":
      L.errored = true;
      liveError(e.message);
      liveState("error: " + e.code);
      break;
    case "ended":
      L.ended = true;
      liveState("ended: " + e.frames + " frames, " + e.late_frames + " late");
      break;
  }
}

function openSourceBuffer(mime) {
  const add = () => {
    if (!L.ms.constructor.isTypeSupported(mime)) {
      liveError("this browser cannot play " + mime + " through Media Source Extensions");
      L.ws.close();
      return;
    }
    L.sb = L.ms.addSourceBuffer(mime);
    L.sb.addEventListener("updateend", () => { trim(); appendNext(); });
    appendNext();
  };
  if (L.ms.readyState === "open") add(); else L.ms.addEventListener("sourceopen", add, { once: true });
}

function onMedia(buffer) {
  L.queue.push(buffer);
  appendNext();
}

function appendNext() {
  const sb = L.sb;
  if (!sb || sb.updating || !L.queue.length || L.ms.readyState !== "open") return;
  try {
    sb.appendBuffer(L.queue.shift());
  } catch (e) {
    liveError("media: " + e.message);
  }
}

function trim() {
  const b = video.buffered;
  if (!b.length) return;
  const end = b.end(b.length - 1);
  if (end - video.currentTime > LIVE_EDGE_S) video.currentTime = end - 0.15;  // stay live
  if (video.paused && !L.ended) video.play().catch(() => {});
  if (!L.sb.updating && video.currentTime - b.start(0) > 2 * KEEP_BEHIND_S) {
    L.sb.remove(b.start(0), video.currentTime - KEEP_BEHIND_S);
  }
}

function endOfStream() {
  const finish = () => {
    if (L.ms && L.ms.readyState === "open" && (!L.sb || !L.sb.updating) && !L.queue.length) {
      try { L.ms.endOfStream(); } catch (e) { /* already ended */ }
    } else if (L.ms && L.ms.readyState === "open") setTimeout(finish, 50);
  };
  finish();
}

// The page's own measurements: when the first frame, and the first frame of typed speech, are shown.
function watchFrames() {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype) || L.watching) return;
  L.watching = true;
  const onFrame = (now, meta) => {
    L.frames_seen += 1;
    if (L.ttff_page == null) {
      L.ttff_page = Math.round(now - L.t_start);
      if (L.ttff_server != null) $("live-ttff").textContent = Math.round(L.ttff_server) + " ms (server), " + L.ttff_page + " ms shown";
    }
    if (L.speech && L.speech.frame != null && meta.mediaTime + 0.5 / L.fps >= L.speech.frame / L.fps) {
      const shown = Math.round(now - L.speech.sent);
      $("live-speak").textContent = Math.round(L.speak_server) + " ms (server), " + shown + " ms shown";
      L.speech = null;
    }
    if (L.ws || L.queue.length) video.requestVideoFrameCallback(onFrame);
    else L.watching = false;
  };
  video.requestVideoFrameCallback(onFrame);
}

// -- the microphone: 16 kHz int16 PCM through an AudioWorklet ------------------------------------
async function startMic() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
    const node = new AudioWorkletNode(ctx, "pcm16k", { processorOptions: { rate: 16000, frame: 640 } });
    node.port.onmessage = (ev) => {
      const pcm = new Int16Array(ev.data);
      let sum = 0;
      for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
      L.mic_level = Math.sqrt(sum / pcm.length) / 32768;  // RMS of the last 40 ms, 0 ... 1
      L.mic_frames = (L.mic_frames || 0) + 1;
      $("live-mic").textContent = "Microphone on " + "|".repeat(Math.min(10, Math.round(L.mic_level * 60)));
      if (L.ws && L.ws.readyState === WebSocket.OPEN) L.ws.send(ev.data);
    };
    const mute = ctx.createGain();
    mute.gain.value = 0;
    ctx.createMediaStreamSource(stream).connect(node).connect(mute).connect(ctx.destination);
    await ctx.resume();
    L.mic = { stream, ctx };
    $("live-mic").setAttribute("aria-pressed", "true");
    $("live-mic").textContent = "Microphone on";
  } catch (e) {
    liveError("microphone: " + e.message + (window.isSecureContext ? "" : " (needs https or localhost)"));
  }
}

function stopMic() {
  if (!L.mic) return;
  L.mic.stream.getTracks().forEach((t) => t.stop());
  L.mic.ctx.close();
  L.mic = null;
  $("live-mic").setAttribute("aria-pressed", "false");
  $("live-mic").textContent = "Microphone";
}
