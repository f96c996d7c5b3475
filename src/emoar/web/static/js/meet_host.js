// /meet/{room}/host: every participant's live emoji (unless the room is aggregate), the room's
// mood now and over time (stacked counts + a smoothed valence line, scrubbable), export, end, delete.

import { REACTION_EMOJI, RoomSocket, VALENCE, overlayStyle, tileElement } from "./meet_common.js";

const $ = (id) => document.getElementById(id);
const roomId = location.pathname.split("/")[2];
const state = { ready: false, room: null, tiles: {}, mood: null, series: [], selected: null, status: "starting",
                ended: false, reactions: 0 };
window.__emoarHost = state;

let token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) {
  sessionStorage.setItem(`emoar.host.${roomId}`, token);
  history.replaceState(null, "", location.pathname);  // keep the key out of the address bar
} else {
  token = sessionStorage.getItem(`emoar.host.${roomId}`);
}
const auth = { Authorization: `Bearer ${token}` };
let style = null;
let labels = [];

function setStatus(text) { state.status = text; $("conn").textContent = text; }

function renderTiles() {
  const ul = $("tiles");
  ul.replaceChildren(...Object.values(state.tiles).sort((a, b) => a.participant - b.participant).map((t) => {
    const li = tileElement(style, t);
    if (state.selected === t.participant) li.classList.add("selected");
    li.addEventListener("click", () => { state.selected = state.selected === t.participant ? null : t.participant; renderTiles(); drawTimeline(); });
    if (t.reaction && performance.now() - t.reactionAt < 8000) li.querySelector(".reaction").textContent = REACTION_EMOJI[t.reaction] || "";
    return li;
  }));
  $("count").textContent = String(state.mood ? state.mood.participants : Object.values(state.tiles).filter((t) => t.status !== "left" && t.status !== "invited").length);
}

function renderMood(counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0) || 1;
  $("mood-bars").replaceChildren(...labels.flatMap((l) => {
    const name = document.createElement("span"); name.textContent = l;
    const bar = document.createElement("div"); bar.className = "bar-fill";
    bar.style.width = `${(100 * (counts[l] || 0)) / total}%`; bar.style.background = style.colors[l] || "#888";
    const n = document.createElement("span"); n.textContent = String(counts[l] || 0);
    return [name, bar, n];
  }));
}

function valence(counts) {
  const n = Object.values(counts).reduce((a, b) => a + b, 0);
  if (!n) return null;
  return Object.entries(counts).reduce((a, [k, v]) => a + (VALENCE[k] || 0) * v, 0) / n;
}

function pushMood(mood, t = Date.now() / 1000) {
  state.mood = mood;
  const last = state.series[state.series.length - 1];
  const v = valence(mood.counts);
  const smooth = v == null ? (last ? last.smooth : 0) : last ? 0.8 * last.smooth + 0.2 * v : v;
  state.series.push({ t, counts: { ...mood.counts }, smooth });
  if (state.series.length > 3600) state.series.shift();
  const scrub = $("scrub");
  const live = Number(scrub.value) >= Number(scrub.max);
  scrub.max = String(state.series.length - 1);
  if (live) scrub.value = scrub.max;
  renderMood(live ? mood.counts : state.series[Number(scrub.value)].counts);
  drawTimeline();
}

function drawTimeline() {
  const c = $("timeline"), ctx = c.getContext("2d");
  const W = c.width, H = c.height, s = state.series;
  ctx.clearRect(0, 0, W, H);
  if (s.length < 2) return;
  // x is time: the first sample at the left edge, the newest at the right
  const n = s.length, t0 = s[0].t, span = Math.max(1e-3, s[n - 1].t - t0);
  const x = (i) => ((s[i].t - t0) / span) * W;
  const totals = s.map((p) => Math.max(1, Object.values(p.counts).reduce((a, b) => a + b, 0)));
  let base = new Array(n).fill(0);
  for (const l of labels) {
    const top = s.map((p, i) => base[i] + (p.counts[l] || 0) / totals[i]);
    ctx.beginPath();
    top.forEach((v, i) => (i ? ctx.lineTo(x(i), H - v * H) : ctx.moveTo(x(i), H - v * H)));
    for (let i = n - 1; i >= 0; i--) ctx.lineTo(x(i), H - base[i] * H);
    ctx.closePath(); ctx.fillStyle = style.colors[l] || "#888"; ctx.globalAlpha = 0.75; ctx.fill();
    base = top;
  }
  ctx.globalAlpha = 1; ctx.strokeStyle = "#fff"; ctx.lineWidth = 2; ctx.beginPath();
  s.forEach((p, i) => { const y = H / 2 - (p.smooth * H) / 2.2; i ? ctx.lineTo(x(i), y) : ctx.moveTo(x(i), y); });
  ctx.stroke();
  const k = Number($("scrub").value);
  ctx.strokeStyle = "#ffc107"; ctx.beginPath(); ctx.moveTo(x(k), 0); ctx.lineTo(x(k), H); ctx.stroke();
  if (state.selected != null && state.tiles[state.selected]) {
    const hist = state.tiles[state.selected].history || [];
    const w = W / Math.max(30, hist.length);
    hist.forEach((e, i) => { ctx.fillStyle = style.colors[e] || "#555"; ctx.fillRect(i * w, 0, w - 1, 10); });
  }
}

function applyTile(t) {
  const prev = state.tiles[t.participant] || { history: [] };
  state.tiles[t.participant] = { ...prev, ...t, lastAt: performance.now() };
}

function onMessage(m) {
  if (m.type === "snapshot") {
    state.room = m.room;
    labels = m.room.labels;
    $("room-title").textContent = m.room.title;
    $("room-meta").textContent = `${m.room.visibility} room`;
    $("room-code").textContent = m.room.join_code || "";
    const aggregate = m.scope === "mood";
    $("tiles").classList.toggle("hidden", aggregate);
    $("aggregate-note").classList.toggle("hidden", !aggregate);
    (m.participants || []).forEach(applyTile);
    if (m.mood) pushMood(m.mood);
    state.ready = true;
  } else if (m.type === "state") {
    const t = state.tiles[m.participant] || { participant: m.participant, name: m.name, history: [] };
    t.state = m.state;
    t.status = m.state.paused ? "paused" : m.state.face ? "live" : "no_face";
    t.history = [...(t.history || []), m.state.expression || null].slice(-120);
    applyTile(t);
  } else if (m.type === "presence") {
    const t = state.tiles[m.participant] || { participant: m.participant, name: m.name, state: null, history: [] };
    t.status = m.status === "online" ? "waiting" : "left";  // live again with its next state
    applyTile(t);
  } else if (m.type === "mood") {
    pushMood(m);
  } else if (m.type === "reaction") {
    state.reactions += 1;
    if (m.participant != null && state.tiles[m.participant]) {
      state.tiles[m.participant].reaction = m.reaction; state.tiles[m.participant].reactionAt = performance.now();
    } else {
      $("host-status").textContent = `reaction: ${REACTION_EMOJI[m.reaction] || m.reaction}`;
    }
  } else if (m.type === "ended") {
    state.ended = true; setStatus(m.deleted ? "room deleted" : "room ended");
  }
  renderTiles();
}

// The timeline moves on while nothing changes: the current mood is sampled every 5 s.
setInterval(() => { if (state.mood && !state.ended) pushMood(state.mood); }, 5000);

// Participants who stopped sending show as stale (the server's own view refreshes every 10 s).
setInterval(() => {
  const now = performance.now();
  let changed = false;
  for (const t of Object.values(state.tiles)) {
    if (t.status === "live" && now - t.lastAt > 15000) { t.status = "stale"; changed = true; }
  }
  if (changed) renderTiles();
}, 2000);
setInterval(async () => {
  if (state.ended) return;
  const r = await fetch(`/v1/rooms/${roomId}`, { headers: auth });
  if (r.ok) { const v = await r.json(); (v.participants || []).forEach((t) => { if (t.status !== "live") applyTile(t); }); renderTiles(); }
}, 10000);

async function download(fmt) {
  const r = await fetch(`/v1/rooms/${roomId}/timeline?format=${fmt}`, { headers: auth });
  if (!r.ok) { $("host-status").textContent = `export failed (HTTP ${r.status})`; return; }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = `room_${roomId}.${fmt}`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 5000);
}
$("export-csv").addEventListener("click", () => download("csv"));
$("export-json").addEventListener("click", () => download("json"));
$("end").addEventListener("click", async () => {
  if (!confirm("End the room for everyone?")) return;
  const r = await fetch(`/v1/rooms/${roomId}/end`, { method: "POST", headers: auth });
  $("host-status").textContent = r.ok ? "room ended; the history stays until you delete it" : `HTTP ${r.status}`;
});
$("delete").addEventListener("click", async () => {
  if (!confirm("Delete the room and everything recorded in it?")) return;
  const r = await fetch(`/v1/rooms/${roomId}`, { method: "DELETE", headers: auth });
  $("host-status").textContent = r.ok ? "deleted" : `HTTP ${r.status}`;
});
$("scrub").addEventListener("input", () => {
  const k = Number($("scrub").value), p = state.series[k];
  if (!p) return;
  const live = k >= state.series.length - 1;
  $("scrub-label").textContent = live ? "live" : new Date(p.t * 1000).toLocaleTimeString();
  renderMood(p.counts); drawTimeline();
});

async function main() {
  style = await overlayStyle();
  if (!token) { setStatus("This page needs the host link (it carries the host key)."); return; }
  new RoomSocket(roomId, token, onMessage, setStatus);
}
main();
