// The upload page: an image -> POST /v1/analyze?annotate=true (the server draws the overlays);
// a clip -> POST /v1/analyze/video, played back here with the overlays drawn per frame.
// Results: per-face table, JSON and CSV downloads (CSV columns as `emoar video --csv`).

import { drawOverlay, loadOverlayAssets } from "./overlay.js";

const $ = (id) => document.getElementById(id);
const ui = {
  file: $("file"), drop: $("drop"), model: $("model"), style: $("style"), status: $("status"), result: $("result"),
  img: $("result-image"), video: $("result-video"), canvas: $("clip-overlay"), dlJson: $("dl-json"), dlCsv: $("dl-csv"),
  table: $("faces"), stage: $("stage"),
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
  for (const a of [ui.dlJson, ui.dlCsv]) { a.removeAttribute("href"); a.removeAttribute("download"); }
  ui.dlCsv.onclick = null;
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

async function analyzeVideo(file) {
  const q = new URLSearchParams({ model: ui.model.value });
  const res = await post(`/v1/analyze/video?${q}`, file);
  state.result = res;
  const stem = (file.name || "video").replace(/\.[^.]+$/, "");
  ui.dlJson.href = objectUrl(new Blob([JSON.stringify(res, null, 1)], { type: "application/json" }));
  ui.dlJson.download = `${stem}_emoar.json`;
  ui.dlCsv.href = "#";
  ui.dlCsv.download = `${stem}_emoar.csv`;
  ui.dlCsv.onclick = async (ev) => {  // the server writes the CSV (same columns as `emoar video --csv`)
    if (ui.dlCsv.href.startsWith("blob:")) return;
    ev.preventDefault();
    ui.dlCsv.setAttribute("aria-disabled", "true");
    try {
      const csv = await post(`/v1/analyze/video?${new URLSearchParams({ model: ui.model.value, format: "csv" })}`, file);
      ui.dlCsv.href = objectUrl(new Blob([csv], { type: "text/csv" }));
      ui.dlCsv.click();
    } catch (e) { setStatus(`CSV: ${e.message}`, "error", true); } finally { ui.dlCsv.removeAttribute("aria-disabled"); }
  };
  const rows = [];
  res.frames.forEach((fr) => fr.faces.forEach((f, i) => rows.push({ frame: fr.frame, t: fr.timestamp_ms.toFixed(0), f, i })));
  fillTable(rows, true);
  ui.video.src = objectUrl(file);
  ui.video.classList.remove("hidden");
  ui.canvas.classList.remove("hidden");
  const tracks = new Set(rows.map((r) => r.f.track_id).filter((t) => t !== null));
  return `${res.frames.length} frame(s) at ${res.fps} fps, ${tracks.size} track(s)`;
}

function drawClip() {
  const v = ui.video, c = ui.canvas, res = state.result;
  if (state.kind === "video" && res && res.frames && v.videoWidth) {
    if (c.width !== v.videoWidth || c.height !== v.videoHeight) { c.width = v.videoWidth; c.height = v.videoHeight; }
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    const t = v.currentTime * 1000;
    let fr = null;
    for (const f of res.frames) { if (f.timestamp_ms <= t + 1) fr = f; else break; }
    if (fr) {
      const faces = fr.faces.map((f) => ({ ...f, box: f.box_xyxy, landmarks: null }));
      drawOverlay(ctx, faces, { style: ui.style.value, labels: labels(), showBars: true, showQuote: true }, assets);
    }
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
  requestAnimationFrame(drawClip);
  setStatus("ready", "ready");
}

main();
