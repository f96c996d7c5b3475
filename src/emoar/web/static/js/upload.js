// The upload page: an image -> POST /v1/analyze?annotate=true (the server draws the overlays);
// a clip -> POST /v1/analyze/video?annotate=true: the server returns the per-frame results, one
// summary per track and the annotated clip as VP8 WebM (plays in every browser, whatever codec
// the upload used). The page shows the clip with each person's number, one table row per person
// and a timeline of their expressions; every per-frame row stays in the JSON / CSV downloads.

import { loadOverlayAssets } from "./overlay.js";
import { registerServiceWorker } from "./pwa.js";

const $ = (id) => document.getElementById(id);
const ui = {
  file: $("file"), drop: $("drop"), model: $("model"), status: $("status"), result: $("result"),
  img: $("result-image"), video: $("result-video"), canvas: $("clip-overlay"), dlJson: $("dl-json"), dlCsv: $("dl-csv"),
  dlVideo: $("dl-video"), table: $("faces"), stage: $("stage"), timeline: $("timeline"), timelineWrap: $("timeline-wrap"),
};
const VIDEO_EXT = /\.(mp4|m4v|mov|webm|mkv|avi)$/i;
const CSV_HEAD = ["frame", "timestamp_ms", "track_id", "x1", "y1", "x2", "y2", "score", "expression", "uncertain"];

const state = { status: "idle", kind: null, result: null, error: null };
window.__emoarUpload = state;
let catalog = null, assets = null, urls = [];

function setStatus(text, kind = "idle", isError = false) {
  state.status = kind;
  document.body.dataset.state = kind;
  ui.status.textContent = text;
  ui.status.classList.toggle("error", isError);
}

function labels() { return (catalog.models.find((m) => m.name === ui.model.value) || catalog.models[0]).labels; }

function objectUrl(blob) { const u = URL.createObjectURL(blob); urls.push(u); return u; }

function csvFromFrames(frames, labs) {
  const rows = [CSV_HEAD.concat(labs.map((n) => `p_${n}`)).join(",")];
  for (const fr of frames) {
    for (const f of fr.faces) {
      rows.push([fr.frame, fr.timestamp_ms, f.track_id ?? "", ...f.box_xyxy, f.score, f.expression, f.uncertain ? 1 : 0,
                 ...labs.map((n) => f.probs[n])].join(","));
    }
  }
  return rows.join("\n") + "\n";
}

function fillTable(rows, withFrame) {
  const labs = labels();
  const head = (withFrame ? ["frame", "t (ms)"] : []).concat(["#", "track", "expression", "confidence", "box (x1, y1, x2, y2)", "OOD"], labs);
  const thead = ui.table.tHead, tbody = ui.table.tBodies[0];
  thead.replaceChildren(Object.assign(document.createElement("tr"), {
    innerHTML: head.map((h) => `<th>${h}</th>`).join(""),
  }));
  tbody.replaceChildren(...rows.slice(0, 500).map(({ frame, t, f, i }) => {
    const tr = document.createElement("tr");
    const top = Math.max(...Object.values(f.probs));
    const cells = (withFrame ? [frame, t] : []).concat([
      i + 1, f.track_id ?? "–", null, `${(top * 100).toFixed(1)}%`, f.box_xyxy.map((v) => v.toFixed(0)).join(", "),
      f.ood_score.toFixed(2), ...labs.map((n) => (f.probs[n] * 100).toFixed(1))]);
    cells.forEach((c) => {
      const td = document.createElement("td");
      if (c === null) {
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = f.uncertain ? assets.uncertainColor : (assets.colors[f.expression] || assets.uncertainColor);
        td.append(sw, f.uncertain ? `uncertain (${f.expression})` : f.expression);
      } else td.textContent = String(c);
      tr.appendChild(td);
    });
    return tr;
  }));
}

async function post(url, file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  const r = await fetch(url, { method: "POST", body: fd });
  const ctype = r.headers.get("content-type") || "";
  const body = ctype.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(typeof body === "object" ? `${r.status}: ${body.message}` : `HTTP ${r.status}`);
  return body;
}

/** Clear everything the previous file showed, so an error never sits above its results. */
function reset() {
  urls.forEach((u) => URL.revokeObjectURL(u));
  urls = [];
  ui.result.classList.add("hidden");
  ui.img.classList.add("hidden"); ui.video.classList.add("hidden"); ui.canvas.classList.add("hidden");
  ui.img.removeAttribute("src");
  ui.video.removeAttribute("src");
  ui.stage.querySelectorAll(".face-no").forEach((el) => el.remove());
  ui.table.tHead.replaceChildren();
  ui.table.tBodies[0].replaceChildren();
  for (const a of [ui.dlJson, ui.dlCsv, ui.dlVideo]) { a.removeAttribute("href"); a.removeAttribute("download"); }
  ui.dlVideo.classList.add("hidden");
  ui.timelineWrap.classList.add("hidden");
  state.result = null;
}

async function analyzeImage(file) {
  const q = new URLSearchParams({ annotate: "true", model: ui.model.value });
  const res = await post(`/v1/analyze?${q}`, file);
  const png = res.annotated_png_base64;
  delete res.annotated_png_base64;  // the download is exactly the analyze JSON
  state.result = res;
  ui.img.src = `data:image/png;base64,${png}`;
  ui.img.classList.remove("hidden");
  const stem = (file.name || "image").replace(/\.[^.]+$/, "");
  ui.dlJson.href = objectUrl(new Blob([JSON.stringify(res, null, 1)], { type: "application/json" }));
  ui.dlJson.download = `${stem}_emoar.json`;
  const frames = [{ frame: 0, timestamp_ms: 0, faces: res.faces }];
  ui.dlCsv.href = objectUrl(new Blob([csvFromFrames(frames, labels())], { type: "text/csv" }));
  ui.dlCsv.download = `${stem}_emoar.csv`;
  fillTable(res.faces.map((f, i) => ({ f, i })), false);
  numberFaces(res);
  return `${res.faces.length} face(s) in ${res.width}×${res.height}`;
}

/** A numbered badge at each face's top-left corner, matching the table's "#" column (placed in
 *  percent of the image, so it stays on the face at any displayed size). */
function numberFaces(res) {
  res.faces.forEach((f, i) => {
    const el = document.createElement("span");
    el.className = "face-no";
    el.textContent = String(i + 1);
    el.style.left = `${(f.box_xyxy[0] / res.width) * 100}%`;
    el.style.top = `${(f.box_xyxy[1] / res.height) * 100}%`;
    ui.stage.appendChild(el);
  });
}

function b64ToBlob(b64, type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

const colorOf = (name, uncertain) => (uncertain ? assets.uncertainColor : (assets.colors[name] || assets.uncertainColor));

/** One row per person: number (as on the clip and the timeline), when seen, dominant expression,
 *  mean probabilities. */
function fillTracks(res) {
  const labs = labels();
  const head = ["#", "seen", "frames", "dominant", "uncertain frames"].concat(labs.map((n) => `${n} %`));
  ui.table.tHead.replaceChildren(Object.assign(document.createElement("tr"), {
    innerHTML: head.map((h) => `<th>${h}</th>`).join(""),
  }));
  ui.table.tBodies[0].replaceChildren(...res.tracks.map((t, k) => {
    const tr = document.createElement("tr");
    tr.dataset.track = String(t.track_id);
    const cells = [k + 1, `${(t.first_ms / 1000).toFixed(1)}–${(t.last_ms / 1000).toFixed(1)} s`, t.frames, null,
                   t.uncertain_frames, ...labs.map((n) => ((t.mean_probs[n] ?? 0) * 100).toFixed(1))];
    cells.forEach((c) => {
      const td = document.createElement("td");
      if (c === null) {
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = colorOf(t.dominant, false);
        td.append(sw, t.dominant);
      } else td.textContent = String(c);
      tr.appendChild(td);
    });
    return tr;
  }));
}

/** The timeline: one lane per person, each analysed frame coloured by that person's top expression
 *  (grey when uncertain), a cursor at the video's time; a click seeks there. */
function drawTimeline() {
  const res = state.result, c = ui.timeline;
  if (!res || !res.tracks) return;
  const lane = 18, gap = 4, left = 34, pad = 16;
  const width = Math.max(320, Math.round(ui.timelineWrap.clientWidth || 640));
  const height = pad + res.tracks.length * (lane + gap) + 18;
  const dpr = window.devicePixelRatio || 1;
  if (c.width !== width * dpr || c.height !== height * dpr) {
    c.width = width * dpr; c.height = height * dpr; c.style.height = `${height}px`;
  }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const frames = res.frames, n = frames.length;
  const t0 = 0, t1 = Math.max(frames[n - 1].timestamp_ms + 1000 / (res.fps || 30), 1);
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - 6);
  const order = new Map(res.tracks.map((t, k) => [t.track_id, k]));
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  res.tracks.forEach((t, k) => {
    const y = pad + k * (lane + gap);
    ctx.fillStyle = "#2b3140";
    ctx.fillRect(left, y, width - left - 6, lane);
    ctx.fillStyle = "#cfd6e4";
    ctx.fillText(`#${k + 1}`, 4, y + lane / 2);
  });
  frames.forEach((fr, i) => {
    const xa = x(fr.timestamp_ms), xb = i + 1 < n ? x(frames[i + 1].timestamp_ms) : x(t1);
    for (const f of fr.faces) {
      const k = order.get(f.track_id);
      if (k === undefined) continue;
      ctx.fillStyle = colorOf(f.expression, f.uncertain);
      // whole pixels, overlapping by one: no seams between frames of the same colour
      ctx.fillRect(Math.floor(xa), pad + k * (lane + gap), Math.max(1, Math.ceil(xb) - Math.floor(xa) + 1), lane);
    }
  });
  ctx.fillStyle = "#9aa3b5";
  ctx.fillText("0 s", left, height - 8);
  const end = `${(t1 / 1000).toFixed(1)} s`;
  ctx.fillText(end, width - 6 - ctx.measureText(end).width, height - 8);
  const cx = x(ui.video.currentTime * 1000);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(cx - 1, pad - 6, 2, height - pad - 12);
  state.timeline = { left, right: width - 6, t1 };
}

async function analyzeVideo(file) {
  const q = new URLSearchParams({ model: ui.model.value, annotate: "true" });
  const res = await post(`/v1/analyze/video?${q}`, file);
  const webm = b64ToBlob(res.annotated_webm_base64, "video/webm");
  delete res.annotated_webm_base64;  // the JSON download is the per-frame results and the tracks
  state.result = res;
  const stem = (file.name || "video").replace(/\.[^.]+$/, "");
  ui.dlJson.href = objectUrl(new Blob([JSON.stringify(res, null, 1)], { type: "application/json" }));
  ui.dlJson.download = `${stem}_emoar.json`;
  ui.dlCsv.href = objectUrl(new Blob([csvFromFrames(res.frames, labels())], { type: "text/csv" }));
  ui.dlCsv.download = `${stem}_emoar.csv`;
  ui.dlVideo.href = objectUrl(webm);
  ui.dlVideo.download = `${stem}_emoar.webm`;
  ui.dlVideo.classList.remove("hidden");
  fillTracks(res);
  ui.video.src = objectUrl(webm);
  ui.video.classList.remove("hidden");
  ui.canvas.classList.remove("hidden");
  ui.timelineWrap.classList.remove("hidden");
  drawTimeline();
  return `${res.frames.length} frame(s) at ${res.fps} fps, ${res.tracks.length} person(s)`;
}

/** Each person's number at the top-left of their face on the current frame of the clip. */
function drawClip() {
  const v = ui.video, c = ui.canvas, res = state.result;
  if (state.kind === "video" && res && res.frames && v.videoWidth) {
    if (c.width !== v.videoWidth || c.height !== v.videoHeight) { c.width = v.videoWidth; c.height = v.videoHeight; }
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    const t = v.currentTime * 1000;
    let fr = null;
    for (const f of res.frames) { if (f.timestamp_ms <= t + 1) fr = f; else break; }
    const order = new Map(res.tracks.map((tr, k) => [tr.track_id, k]));
    const r = Math.max(10, Math.round(c.width / 45));
    ctx.font = `bold ${Math.round(r * 1.1)}px system-ui, sans-serif`;
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (const f of fr ? fr.faces : []) {
      const k = order.get(f.track_id);
      if (k === undefined) continue;
      const [x1, y1] = f.box_xyxy;
      ctx.fillStyle = "rgba(20, 24, 33, 0.85)";
      ctx.beginPath(); ctx.arc(x1, y1, r, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#ffffff";
      ctx.fillText(String(k + 1), x1, y1 + 1);
    }
    drawTimeline();
  }
  requestAnimationFrame(drawClip);
}

async function handle(file) {
  if (!file) return;
  reset();
  const isVideo = (file.type || "").startsWith("video/") || VIDEO_EXT.test(file.name || "");
  state.kind = isVideo ? "video" : "image";
  state.result = null; state.error = null;
  setStatus(`analysing ${file.name} (${(file.size / 1e6).toFixed(2)} MB)…`, "busy");
  try {
    const summary = isVideo ? await analyzeVideo(file) : await analyzeImage(file);
    ui.result.classList.remove("hidden");
    setStatus(`${file.name}: ${summary}`, "done");
  } catch (e) {
    state.error = e.message;
    setStatus(`${file.name}: ${e.message}`, "error", true);
  }
}

async function main() {
  [catalog, assets] = await Promise.all([fetch("/v1/models").then((r) => r.json()), loadOverlayAssets()]);
  for (const m of catalog.models) {
    const o = document.createElement("option");
    o.value = m.name; o.textContent = m.name + (m.default ? " (default)" : "");
    ui.model.appendChild(o);
  }
  ui.model.value = catalog.default;
  ui.file.addEventListener("change", () => handle(ui.file.files[0]));
  ["dragenter", "dragover"].forEach((e) => ui.drop.addEventListener(e, (ev) => { ev.preventDefault(); ui.drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((e) => ui.drop.addEventListener(e, (ev) => { ev.preventDefault(); ui.drop.classList.remove("over"); }));
  ui.drop.addEventListener("drop", (ev) => handle(ev.dataTransfer.files[0]));
  ui.timeline.addEventListener("click", (ev) => {  // seek the clip to the clicked time
    const tl = state.timeline, r = ui.timeline.getBoundingClientRect();
    if (!tl || !ui.video.duration) return;
    const f = Math.min(1, Math.max(0, (ev.clientX - r.left - tl.left) / (tl.right - tl.left)));
    ui.video.currentTime = Math.min(ui.video.duration, (f * tl.t1) / 1000);
  });
  requestAnimationFrame(drawClip);
  setStatus("ready", "ready");
}

main();
registerServiceWorker();
