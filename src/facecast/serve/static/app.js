// facecast page: the shared parts (token, tabs, faces) and the Create tab.
// No build step, no dependencies: everything here is served by facecast itself.
"use strict";

const $ = (id) => document.getElementById(id);
const facecast = (window.facecast = { faces: [], token: null });

// -- the API, with the token when the server needs one -------------------------------------
function setStatus(text) { $("status").textContent = text; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (facecast.token) headers["Authorization"] = "Bearer " + facecast.token;
  const res = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (res.status === 401) {
    askToken();
    throw new Error("this server needs a token");
  }
  if (!res.ok) {
    let message = res.status + " " + res.statusText;
    try { const body = await res.json(); message = body.error || JSON.stringify(body.detail || body); } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res;
}

function askToken() { $("token-box").hidden = false; $("token").focus(); }

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  facecast.token = token;
  // The cookie carries the token where no header can be set: <video src>, EventSource, WebSocket.
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "facecast_token=" + encodeURIComponent(token) + "; path=/; SameSite=Strict" + secure;
  $("token-box").hidden = true;
  refreshFaces();
  refreshJobs();
});

// -- tabs -------------------------------------------------------------------------------------
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => showTab(tab.dataset.tab));
}
function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  $("create").hidden = name !== "create";
  $("live").hidden = name !== "live";
}

// -- faces ------------------------------------------------------------------------------------
function listOf(body, key) { return Array.isArray(body) ? body : (body && body[key]) || []; }

async function refreshFaces() {
  try {
    facecast.faces = listOf(await api("/v1/faces"), "faces");
  } catch (e) { setStatus(e.message); return; }
  const label = (f) => (f.name || f.id) + " (" + f.kind + ")";
  const select = $("face-select"), keep = select.value;
  select.replaceChildren(new Option("(none)", ""), ...facecast.faces.map((f) => new Option(label(f), f.id)));
  select.value = keep;
  const live = $("live-face"), keepLive = live.value;
  const usable = facecast.faces.filter((f) => f.kind !== "video");
  live.replaceChildren(...usable.map((f) => new Option(label(f), f.id)));
  if (keepLive) live.value = keepLive;
  document.dispatchEvent(new Event("facecast:faces"));
}
facecast.refreshFaces = refreshFaces;

// -- Create: inputs ---------------------------------------------------------------------------
let faceFile = null, recorded = null;

function chooseFace(file) {
  faceFile = file;
  $("face-chosen").textContent = file ? file.name + " (" + Math.round(file.size / 1024) + " KiB)" : "";
  if (file) {
    $("face-select").value = "";
    if (file.type.startsWith("video/") && $("kind").value === "say") $("kind").value = "dub";
  }
}
$("face-file").addEventListener("change", (ev) => chooseFace(ev.target.files[0] || null));
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  if (ev.dataTransfer.files.length) chooseFace(ev.dataTransfer.files[0]);
});
$("face-select").addEventListener("change", () => { if ($("face-select").value) chooseFace(null); });

let recorder = null;
$("record").addEventListener("click", async () => {
  if (recorder) { recorder.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const parts = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (ev) => parts.push(ev.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      recorded = new Blob(parts, { type: recorder.mimeType });
      $("record-state").textContent = "recorded " + Math.round(recorded.size / 1024) + " KiB";
      $("record").textContent = "Record";
      recorder = null;
    };
    recorder.start();
    $("record").textContent = "Stop";
    $("record-state").textContent = "recording ...";
  } catch (e) { $("record-state").textContent = "no microphone: " + e.message; }
});

// -- Create: submit and follow a job ----------------------------------------------------------
function specFromForm() {
  const kind = $("kind").value, spec = { kind };
  const text = $("text").value.trim();
  if (kind !== "twin_train" && text) spec.text = text;
  if (kind === "say") { spec.size = Number($("size").value); spec.fps = Number($("fps").value); }
  return spec;
}

// A dropped face is uploaded first (POST /v1/faces), so the job names it by id: it can be
// retried, and the Live tab can use it.
async function uploadFace(file) {
  const form = new FormData();
  form.append("face", file, file.name || "face");
  const face = await api("/v1/faces", { method: "POST", body: form });
  await refreshFaces();
  return face.id;
}

const jobAudio = {};  // job id -> the audio it was given (a retry sends it again)

async function submitJob(spec, faceId, audio) {
  const form = new FormData();
  form.append("spec", JSON.stringify(spec));
  form.append("face_id", faceId);
  if (audio) form.append("audio", audio, audio.name || "recording.webm");
  const job = await api("/v1/jobs", { method: "POST", body: form });
  if (audio) jobAudio[job.id] = audio;
  return job;
}

$("job-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const spec = specFromForm(), faceId = $("face-select").value;
  const audio = $("audio-file").files[0] || recorded;
  $("job-error").textContent = "";
  if (!faceFile && !faceId) { showJobError("choose a face: drop a file or pick an uploaded one"); return; }
  if (spec.kind !== "twin_train" && !spec.text && !audio) { showJobError("type some text or give audio"); return; }
  $("submit").disabled = true;
  try {
    setStatus(faceFile ? "uploading " + faceFile.name + " ..." : "");
    const id = faceFile ? await uploadFace(faceFile) : faceId;
    if (faceFile) { chooseFace(null); $("face-select").value = id; }
    setStatus("");
    const job = await submitJob(spec, id, audio);
    follow(job.id);
    refreshJobs();
  } catch (e) { showJobError(e.message); } finally { $("submit").disabled = false; }
});

function showJobError(message) { $("job-current").hidden = false; $("job-error").textContent = message; }

let source = null;
function follow(id) {
  if (source) source.close();
  $("job-current").hidden = false;
  $("job-label").textContent = "Job " + id;
  $("job-progress").value = 0;
  $("job-stage").textContent = "queued";
  $("job-error").textContent = "";
  $("result").hidden = true;
  $("download").hidden = true;
  source = new EventSource("/v1/jobs/" + encodeURIComponent(id) + "/events");
  const onEvent = (ev) => {
    let data = {};
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    const type = data.type || data.status || ev.type;
    if (typeof data.fraction === "number") $("job-progress").value = data.fraction;
    else if (typeof data.progress === "number") $("job-progress").value = data.progress;
    if (data.stage) $("job-stage").textContent = data.stage + (data.eta_s != null ? ", about " + Math.round(data.eta_s) + " s left" : "");
    else if (type && type !== "message" && type !== "progress") $("job-stage").textContent = type;
    if (type === "done") { source.close(); showResult(id); refreshJobs(); }
    if (type === "failed" || type === "cancelled") {
      source.close();
      $("job-error").textContent = data.error || type;
      refreshJobs();
    }
  };
  for (const name of ["message", "queued", "running", "stage", "progress", "done", "failed", "cancelled", "status"]) {
    source.addEventListener(name, onEvent);
  }
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) refreshJobs(); };
}
facecast.follow = follow;

function showResult(id) {
  const url = "/v1/jobs/" + encodeURIComponent(id) + "/result";
  $("job-progress").value = 1;
  $("job-stage").textContent = "done";
  const video = $("result");
  video.src = url;
  video.hidden = false;
  const a = $("download");
  a.href = url;
  a.hidden = false;
}

// -- the list of jobs --------------------------------------------------------------------------
async function refreshJobs() {
  let jobs;
  try { jobs = listOf(await api("/v1/jobs"), "jobs"); } catch (e) { setStatus(e.message); return; }
  const body = $("jobs").querySelector("tbody");
  body.replaceChildren(...jobs.map(jobRow));
  if (jobs.some((j) => j.status === "queued" || j.status === "running")) setTimeout(refreshJobs, 2000);
}
facecast.refreshJobs = refreshJobs;

function jobRow(job) {
  const tr = document.createElement("tr");
  tr.dataset.job = job.id;
  const cell = (text) => { const td = document.createElement("td"); td.textContent = text; tr.append(td); return td; };
  cell(job.id);
  cell((job.spec && job.spec.kind) || job.kind || "");
  cell(job.status + (job.error ? ": " + job.error : ""));
  cell(typeof job.progress === "number" ? Math.round(job.progress * 100) + " %" : "");
  const actions = cell("");
  const button = (label, fn) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.className = "job-" + label.toLowerCase();
    b.addEventListener("click", fn);
    actions.append(b);
  };
  if (job.status === "done") {
    button("Play", () => {
      if (source) source.close();
      $("job-current").hidden = false;
      $("job-label").textContent = "Job " + job.id;
      $("job-error").textContent = "";
      showResult(job.id);
      $("result").play().catch(() => {});
    });
  }
  if ((job.status === "failed" || job.status === "cancelled") && job.face_id && (job.kind === "twin_train" || job.spec.text || jobAudio[job.id])) {
    button("Retry", async () => {
      try { const j = await submitJob(job.spec, job.face_id, jobAudio[job.id]); follow(j.id); refreshJobs(); }
      catch (e) { showJobError("retry: " + e.message); }
    });
  }
  button(job.status === "queued" || job.status === "running" ? "Cancel" : "Delete", async () => {
    try { await api("/v1/jobs/" + encodeURIComponent(job.id), { method: "DELETE" }); } catch (e) { setStatus(e.message); }
    refreshJobs();
  });
  return tr;
}

refreshFaces();
refreshJobs();
