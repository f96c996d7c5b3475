// The live page: camera -> engine (on-device or server) -> overlays on a canvas over the video.
//
// State for humans is on the page; state for tests is on window.__emoar and on <body> data
// attributes (data-ready, data-mode, data-faces).

import { MotionSmoother } from "./motion.js";
import { drawOverlay, loadOverlayAssets, PlacementMemory } from "./overlay.js";
import { OnDeviceEngine, onDeviceSupported } from "./ondevice.js";
import { ServerEngine } from "./server.js";
import { WebRTCEngine } from "./webrtc.js";
import { registerServiceWorker } from "./pwa.js";
import { Recorder, saveBlob, snapshot, stampedName } from "./capture.js";
import { LiveTimeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const ui = {
  mode: $("mode"), model: $("model"), style: $("style"), detector: $("detector"), bars: $("bars"),
  quote: $("quote"), mirror: $("mirror"), start: $("start"), video: $("video"), canvas: $("overlay"),
  fps: $("fps"), latency: $("latency"), nfaces: $("nfaces"), status: $("status"), backend: $("backend"),
  list: $("face-list"), placeholder: $("placeholder"), camera: $("camera"), realtime: $("realtime"),
  capture: $("capture"), snapshot: $("snapshot"), record: $("record"), fullscreen: $("fullscreen"),
  stage: $("stage"), stageWrap: $("stage-wrap"), timeline: $("timeline"), legend: $("timeline-legend"),
};

const state = {
  ready: false, mode: null, model: null, detector: null, frames: 0, fps: 0, latencyMs: 0,
  faces: [], drawnFaces: 0, errors: [], status: "starting", cameraOn: false, onDeviceAvailable: false,
  draws: 0, drawLog: [],  // every animation frame that drew faces; the last DRAW_LOG entries
  realtime: true, captured: false, captures: 0, recording: false, meshPoints: 0, timeline: { tracks: 0, samples: 0 },
  cameras: [],  // {value, label} of the camera chooser's devices (after permission)
};
const DRAW_LOG = 600;
window.__emoar = state;

let assets = null;
let catalog = null;          // GET /v1/models
let engine = null;           // OnDeviceEngine | ServerEngine
let switching = Promise.resolve();
let busy = false;
let latest = null;           // last result {width, height, faces}
let latestAt = 0;            // when the frame of `latest` was captured (performance.now())
const motion = new MotionSmoother();
const recorder = new Recorder();
const timeline = new LiveTimeline(ui.timeline);
let captureRequested = false;
const placement = new PlacementMemory();
let t0 = performance.now();
let lastFrameAt = 0;

function setStatus(text, isError = false) {
  state.status = text;
  ui.status.textContent = text;
  ui.status.classList.toggle("error", isError);
  if (isError) state.errors.push(text);
}

function modeName(mode) { return { ondevice: "on-device", server: "server", webrtc: "WebRTC server" }[mode] || mode; }

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function modelInfo(name) { return catalog.models.find((m) => m.name === name) || catalog.models[0]; }

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser has no camera API (getUserMedia); open the page over http://localhost or https");
  }
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  const choice = ui.camera.value;
  if (choice.startsWith("facing:")) video.facingMode = { ideal: choice.slice(7) };
  else if (choice.startsWith("device:")) video.deviceId = { exact: choice.slice(7) };
  const stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
  ui.video.srcObject = stream;
  await ui.video.play();
  ui.placeholder.hidden = true;
  state.cameraOn = true;
  state.cameraError = null;
  document.body.dataset.camera = "on";
  ui.start.textContent = "Stop camera";
  listCameras();
}

/** The camera chooser's devices (their names are known once the camera is allowed). */
async function listCameras() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput" && d.deviceId);
  const keep = ui.camera.value;
  ui.camera.querySelectorAll("option[data-device]").forEach((o) => o.remove());
  state.cameras = devices.map((d, i) => ({ value: `device:${d.deviceId}`, label: d.label || `Camera ${i + 1}` }));
  for (const c of state.cameras) {
    const o = document.createElement("option");
    o.value = c.value; o.textContent = c.label; o.dataset.device = "1";
    ui.camera.appendChild(o);
  }
  if ([...ui.camera.options].some((o) => o.value === keep)) ui.camera.value = keep;
}

/** Another camera chosen: restart the camera with it (a back camera is not shown mirrored). */
async function switchCamera() {
  const wasOn = state.cameraOn;
  if (ui.camera.value === "facing:environment") ui.mirror.checked = false;
  else if (ui.camera.value === "facing:user") ui.mirror.checked = true;
  try { localStorage.setItem("emoar.camera", ui.camera.value); } catch (e) { /* private mode */ }
  if (!wasOn) return;
  stopCamera("Switching camera…");
  if (await tryStartCamera()) {
    if (state.mode === "webrtc") await configure();  // the new camera track
    else if (state.ready) setStatus(`${modeName(state.mode)} mode · ${state.model}`);
  }
}

function stopCamera(message = "Camera stopped.") {
  if (engine instanceof WebRTCEngine) engine.close();  // nothing to stream; Start camera reconnects
  const s = ui.video.srcObject;
  if (s) s.getTracks().forEach((t) => t.stop());
  ui.video.srcObject = null;
  state.cameraOn = false;
  ui.placeholder.hidden = false;
  ui.placeholder.textContent = message;
  ui.start.textContent = "Start camera";
  latest = null;
  motion.clear();
  placement.clear();
  timeline.clear();
  if (recorder.recording) stopRecording();
  setCaptured(false);
  state.faces = []; state.fps = 0; state.latencyMs = 0; lastFrameAt = 0;
  updateStats();  // no frozen figures from the last frame
  ui.fps.textContent = "–";
}

/** What to tell the user when the camera cannot start, by the getUserMedia error. */
function cameraAdvice(e) {
  const upload = " You can still analyse a photo or a clip on the Upload page.";
  switch (e && e.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was denied. Allow the camera for this site (the camera icon in the address bar), then press Start camera." + upload;
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Connect one and press Start camera." + upload;
    case "NotReadableError":
    case "AbortError":
      return "The camera is busy (another app or tab is using it). Close it and press Start camera." + upload;
    default:
      return `The camera did not start: ${e && e.message ? e.message : e}.` + upload;
  }
}

async function tryStartCamera() {
  try {
    await startCamera();
    return true;
  } catch (e) {
    const advice = cameraAdvice(e);
    stopCamera(advice);
    state.cameraError = e && e.name ? e.name : String(e);
    document.body.dataset.camera = "off";
    setStatus(`camera: ${advice}`, true);
    return false;
  }
}

/** Switch mode/model/detector; serialised so two switches never overlap. */
function configure() {
  switching = switching.then(async () => {
    const mode = ui.mode.value, model = modelInfo(ui.model.value), detector = ui.detector.value;
    state.ready = false;
    document.body.dataset.ready = "false";
    while (busy) await sleep(10);
    try {
      if (mode === "ondevice") {
        if (!(engine instanceof OnDeviceEngine)) {
          if (engine) await engine.close();
          setStatus("loading on-device models…");
          engine = await new OnDeviceEngine().init(model, catalog.alignment, detector);
        } else {
          await engine.setModel(model);
          await engine.setDetector(detector);
        }
        ui.backend.textContent = `on-device · onnxruntime-web wasm (${window.ort.env.wasm.numThreads} thread) · ${detector.startsWith("blazeface") ? "BlazeFace on onnxruntime-web, detected every 5 frames" : `MediaPipe ${detector}`}`;
      } else if (mode === "webrtc") {
        if (engine) await engine.close();
        engine = null;
        setStatus("connecting to the server over WebRTC…");
        engine = await new WebRTCEngine().init(model, ui.video.srcObject);
        ui.backend.textContent = `server over WebRTC · ${catalog.detector} detector · results on a data channel`;
      } else {
        if (engine) await engine.close();
        setStatus("connecting to the server…");
        engine = await new ServerEngine().init(model);
        ui.backend.textContent = `server · ${catalog.detector} detector`;
      }
      state.mode = mode; state.model = model.name; state.detector = mode === "ondevice" ? detector : catalog.detector;
      document.body.dataset.mode = mode;
      ui.detector.disabled = mode !== "ondevice";
      latest = null; state.frames = 0; state.fps = 0;
      motion.clear(); placement.clear();
      state.ready = true;
      document.body.dataset.ready = "true";
      setStatus(`${modeName(mode)} mode · ${model.name}`);
      drawLegend(model.labels);
    } catch (e) {
      console.warn("mode switch failed", e);
      engine = null;
      setStatus(`${mode} mode failed: ${e.message}`, true);
      if (mode === "ondevice") {  // fall back to server mode, which needs nothing in the browser
        ui.mode.value = "server";
        configure();
      }
    }
  });
  return switching;
}

/** The timeline's colour key: one swatch per label of the model in use. */
function drawLegend(labels) {
  ui.legend.replaceChildren(...labels.map((name) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = assets.colors[name] || "#888";
    item.append(swatch, name);
    return item;
  }));
}

// The camera's frames as the browser presents them (requestVideoFrameCallback, where there is
// one): a frame already analysed is not analysed again, so a fast model does not burn the CPU
// on copies of one frame (a 15-fps camera analysed 45 times a second is 30 wasted inferences).
const videoFrames = { seq: 0, seenAt: 0 };
function watchVideoFrames(video) {
  if (!video.requestVideoFrameCallback) return;
  const onFrame = () => {
    videoFrames.seq += 1; videoFrames.seenAt = performance.now();
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}
let analysedSeq = -1;
/** Whether the video shows a frame not analysed yet (always, where frames cannot be watched or
 * have not been reported for a while, e.g. a hidden video element). */
function newVideoFrame() {
  if (!videoFrames.seenAt || performance.now() - videoFrames.seenAt > 500) return true;
  return videoFrames.seq !== analysedSeq;
}

async function processLoop() {
  for (;;) {
    if (!state.ready || !engine || !state.cameraOn || ui.video.readyState < 2) { await sleep(30); continue; }
    const once = captureRequested;  // capture-and-analyse: this one (frozen) frame
    if (!state.realtime && !once) { await sleep(30); continue; }
    // WebRTC sends the track itself and waits for the server's next result
    if (!once && !(engine instanceof WebRTCEngine) && !newVideoFrame()) { await sleep(4); continue; }
    captureRequested = false;
    analysedSeq = videoFrames.seq;
    busy = true;
    const current = engine;
    try {
      const captured = performance.now();
      if (once) { motion.clear(); setCaptured(true); }
      const r = await current.process(ui.video, captured - t0);
      if (current === engine && state.ready && state.cameraOn) {
        latest = r;
        latestAt = captured;
        if (once) state.captures += 1;
        motion.update(displayFaces(r), captured);
        timeline.add(r.faces, modelInfo(state.model).labels, performance.now());
        const now = performance.now();
        if (lastFrameAt) {
          const inst = 1000 / Math.max(1, now - lastFrameAt);
          state.fps = state.fps ? 0.85 * state.fps + 0.15 * inst : inst;
        }
        lastFrameAt = now;
        state.frames += 1;
        state.latencyMs = r.speed_ms && r.speed_ms.total ? r.speed_ms.total : 0;
        state.detections = current.detectionStats || null;
        state.faces = r.faces.map((f) => ({ box_xyxy: f.box_xyxy, expression: f.expression, uncertain: f.uncertain,
                                            track_id: f.track_id, score: f.score, ood_score: f.ood_score,
                                            probs: f.probs }));
        if (r.error) setStatus(r.error, true);
        updateStats();
      }
    } catch (e) {
      if (current === engine) setStatus(`processing failed: ${e.message}`, true);
      await sleep(300);
    } finally {
      busy = false;
    }
    await sleep(0);
  }
}

/** The captured (frozen) frame is shown, or the live camera. */
function setCaptured(on) {
  state.captured = on;
  document.body.dataset.captured = String(on);
  ui.capture.textContent = on ? "Back to live" : "Capture & analyse";
  if (!on && ui.video.paused && ui.video.srcObject) ui.video.play().catch(() => {});
}

/** Real time on: every camera frame is analysed; off: only a frame the user captures. */
function setRealtime(on) {
  state.realtime = on;
  ui.realtime.checked = on;
  ui.capture.hidden = on;
  document.body.dataset.realtime = String(on);
  if (on) setCaptured(false);
  else { latest = null; motion.clear(); state.faces = []; updateStats(); }
}

async function captureAndAnalyse() {
  if (state.captured) { setCaptured(false); latest = null; state.faces = []; updateStats(); return; }
  if (!state.cameraOn || !state.ready || !engine) { setStatus("start the camera first", true); return; }
  if (engine instanceof WebRTCEngine) {
    setStatus("capture & analyse works in on-device and server modes (WebRTC analyses the stream)", true);
    return;
  }
  ui.video.pause();  // the picture stays on the analysed frame
  captureRequested = true;
}

async function stopRecording() {
  const r = await recorder.stop();
  state.recording = false;
  ui.record.classList.remove("on");
  ui.record.textContent = "Record";
  if (r && r.blob.size) {
    saveBlob(r.blob, stampedName(r.type.includes("mp4") ? "mp4" : "webm"));
    setStatus(`recording saved to this device (${r.seconds.toFixed(0)} s, ${(r.blob.size / 1e6).toFixed(1)} MB)`);
  }
}

function wireTools() {
  ui.realtime.addEventListener("change", () => setRealtime(ui.realtime.checked));
  ui.capture.addEventListener("click", captureAndAnalyse);
  ui.snapshot.addEventListener("click", async () => {
    const blob = await snapshot(ui.video, ui.canvas, ui.mirror.checked);
    if (!blob) { setStatus("nothing to save yet: start the camera", true); return; }
    saveBlob(blob, stampedName("png"));
    setStatus("snapshot saved to this device");
  });
  if (!Recorder.supported()) { ui.record.disabled = true; ui.record.title = "This browser cannot record (no MediaRecorder)"; }
  recorder.onAutoStop = () => { if (state.recording) stopRecording(); };
  ui.record.addEventListener("click", () => {
    if (recorder.recording) { stopRecording(); return; }
    try {
      recorder.start(ui.video, ui.canvas, ui.mirror.checked);
      state.recording = true;
      ui.record.classList.add("on");
      ui.record.textContent = "Stop (0 s)";
    } catch (e) { setStatus(`cannot record: ${e.message}`, true); }
  });
  if (!ui.stageWrap.requestFullscreen) ui.fullscreen.hidden = true;
  ui.fullscreen.addEventListener("click", async () => {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await ui.stageWrap.requestFullscreen();
    } catch (e) { setStatus(`fullscreen refused: ${e.message}`, true); }
  });
  document.addEventListener("fullscreenchange", () => {
    ui.fullscreen.textContent = document.fullscreenElement ? "Exit fullscreen" : "Fullscreen";
  });
  ui.camera.addEventListener("change", switchCamera);
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", listCameras);
  }
}

function updateStats() {
  ui.fps.textContent = state.fps.toFixed(1);
  ui.latency.textContent = state.latencyMs ? state.latencyMs.toFixed(0) : "–";
  ui.nfaces.textContent = String(state.faces.length);
  document.body.dataset.faces = String(state.faces.length);
  ui.list.replaceChildren(...state.faces.map((f) => {
    const li = document.createElement("li");
    const top = Math.max(...Object.values(f.probs));
    li.textContent = `#${f.track_id ?? "–"} ${f.uncertain ? "uncertain" : f.expression} ${(top * 100).toFixed(0)}%`;
    li.dataset.expression = f.expression;
    return li;
  }));
}

/** Faces in display coordinates (mirrored like the video when "Mirror" is on). */
function displayFaces(r) {
  const W = r.width;
  return r.faces.map((f) => {
    let box = f.box_xyxy, lm = f.landmarks_xy, mesh = f.mesh_xy || null;
    if (ui.mirror.checked) {
      box = [W - box[2], box[1], W - box[0], box[3]];
      if (mesh) mesh = mesh.map(([x, y]) => [W - x, y]);
      if (lm) {
        lm = lm.map(([x, y]) => [W - x, y]);
        // keep image-left first after the flip: swap eyes and mouth corners
        lm = lm.length === 5 ? [lm[1], lm[0], lm[2], lm[4], lm[3]] : [lm[1], lm[0], ...lm.slice(2)];
      }
    }
    return { ...f, box, landmarks: lm, mesh };
  });
}

function drawLoop() {
  const c = ui.canvas, v = ui.video;
  const W = v.videoWidth, H = v.videoHeight;
  if (W && H && (c.width !== W || c.height !== H)) { c.width = W; c.height = H; }
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (latest && latest.faces.length && state.cameraOn) {
    // text at least its nominal size on screen, however small the canvas is shown (phones)
    const uiScale = c.clientWidth ? Math.min(2.5, Math.max(1, c.width / c.clientWidth)) : 1;
    const opts = { style: ui.style.value, labels: modelInfo(state.model || ui.model.value).labels,
                   showBars: ui.bars.checked, showQuote: ui.quote.checked, memory: placement, uiScale };
    const now = performance.now();
    const faces = motion.at(displayFaces(latest), now);
    state.drawnFaces = drawOverlay(ctx, faces, opts, assets);
    state.meshPoints = faces.reduce((n, f) => n + (f.mesh ? f.mesh.length : 0), 0);
    state.draws += 1;
    state.drawLog.push({ t: now, resultAt: latestAt, faces: faces.map((f) => ({
      id: f.track_id, box: f.box.map((v) => Math.round(v * 10) / 10),
      sides: { ...(f.track_id != null ? placement.byTrack.get(f.track_id) : {}) } })) });
    if (state.drawLog.length > DRAW_LOG) state.drawLog.splice(0, state.drawLog.length - DRAW_LOG);
  } else {
    state.drawnFaces = 0;
  }
  if (recorder.recording) recorder.frame(v, c, ui.mirror.checked);
  if (catalog && timeline.draw(modelInfo(state.model || ui.model.value).labels, assets.colors, performance.now())) {
    state.timeline = { tracks: timeline.lanes, samples: timeline.size };
    if (recorder.recording) ui.record.textContent = `Stop (${Math.round(recorder.seconds)} s)`;
  }
  requestAnimationFrame(drawLoop);
}

async function main() {
  try {
    [assets, catalog] = await Promise.all([
      loadOverlayAssets(),
      fetch("/v1/models").then((r) => { if (!r.ok) throw new Error(`GET /v1/models: HTTP ${r.status}`); return r.json(); }),
    ]);
  } catch (e) {
    setStatus(`cannot reach the server: ${e.message}`, true);
    return;
  }
  for (const m of catalog.models) {
    const o = document.createElement("option");
    o.value = m.name;
    const accKey = Object.keys(m.metrics || {}).find((k) => k.includes("acc"));
    const acc = accKey ? m.metrics[accKey] : null;
    o.textContent = `${m.name}${m.default ? " (default)" : ""}${acc ? ` · acc ${(acc * 100).toFixed(1)}%` : ""}`;
    ui.model.appendChild(o);
  }
  ui.model.value = catalog.default;
  state.onDeviceAvailable = onDeviceSupported() && document.body.dataset.vendor === "ok";
  const params = new URLSearchParams(location.search);
  ui.mode.value = params.get("mode") || (state.onDeviceAvailable ? "ondevice" : "server");
  if (!state.onDeviceAvailable) ui.mode.querySelector('option[value="ondevice"]').disabled = true;
  if (params.get("detector")) ui.detector.value = params.get("detector");
  if (params.get("style")) ui.style.value = params.get("style");
  if (params.get("mirror") === "0") ui.mirror.checked = false;

  if (window.matchMedia("(max-width: 700px)").matches) $("settings").open = false;  // phones: the picture first
  const styleParts = () => {  // bars and quotes exist only in the full style
    const full = ui.style.value === "full";
    ui.bars.disabled = !full; ui.quote.disabled = !full;
    ui.bars.parentElement.classList.toggle("muted", !full); ui.quote.parentElement.classList.toggle("muted", !full);
  };
  ui.style.addEventListener("change", styleParts);
  styleParts();
  ui.mode.addEventListener("change", configure);
  ui.model.addEventListener("change", configure);
  ui.detector.addEventListener("change", configure);
  ui.start.addEventListener("click", async () => {
    if (state.cameraOn) { stopCamera(); return; }
    if (await tryStartCamera()) {
      if (state.mode === "webrtc" || ui.mode.value === "webrtc") await configure();  // the new camera track
      else if (state.ready) setStatus(`${modeName(state.mode)} mode · ${state.model}`);
    }
  });
  try {
    const saved = localStorage.getItem("emoar.camera");
    if (saved && [...ui.camera.options].some((o) => o.value === saved)) ui.camera.value = saved;
  } catch (e) { /* private mode */ }
  wireTools();
  if (params.get("realtime") === "0") setRealtime(false);
  requestAnimationFrame(drawLoop);
  watchVideoFrames(ui.video);
  const cameraOk = await tryStartCamera();
  await configure();
  if (!cameraOk) setStatus(`camera: ${ui.placeholder.textContent}`, true);  // keep the advice in view
  processLoop();
}

main();
registerServiceWorker();
