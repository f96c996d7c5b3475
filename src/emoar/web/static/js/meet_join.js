// /meet/{room}: consent, then the camera runs on this device only; the page sends the label, its
// probabilities and "face found" on change (at most ~2/s) and a heartbeat every 5 s. Every message
// sent is shown on the page. Reloading keeps the same participant (the token is kept locally).

import { OnDeviceEngine, onDeviceSupported } from "./ondevice.js";
import { REACTION_EMOJI, RoomSocket, overlayStyle, sprite, tileElement } from "./meet_common.js";

const $ = (id) => document.getElementById(id);
const roomId = location.pathname.split("/")[2];
const params = new URLSearchParams(location.search);
const key = `emoar.p.${roomId}`;
const state = { joined: false, connected: false, sent: [], lastSent: null, paused: false, scope: null,
                others: {}, status: "consent", expression: null, error: null, ended: false };
window.__emoarJoin = state;

let socket = null, engine = null, style = null, labels = [];

$("code").value = params.get("code") || "";
const saved = JSON.parse(localStorage.getItem(key) || "null");
if (saved) { $("name").value = saved.display_name || ""; $("agree").textContent = "I agree — rejoin and start my camera"; }

function setStatus(text) { state.status = text; $("conn").textContent = text; state.connected = text === "connected"; }

function send(msg) {
  if (!socket || !socket.send(msg)) return;
  state.lastSent = { ...msg, at: Date.now() };
  state.sent.push(msg.type);
  $("sent").textContent = JSON.stringify(msg, null, 1);
}

function showMine(expr, face, paused) {
  $("my-emoji").src = sprite(style, paused || !face ? null : expr);
  $("my-emoji").style.opacity = paused || !face ? "0.4" : "1";
  $("my-label").textContent = paused ? "paused" : face ? expr || "…" : "no face";
}

function renderOthers() {
  $("tiles").replaceChildren(...Object.values(state.others).sort((a, b) => a.participant - b.participant).map((t) => tileElement(style, t)));
}

function onMessage(m) {
  if (m.type === "snapshot") {
    state.scope = m.scope;
    labels = m.room.labels;
    $("room-title").textContent = m.room.title;
    $("others-section").classList.toggle("hidden", m.scope !== "tiles");
    (m.participants || []).forEach((t) => { state.others[t.participant] = t; });
    renderOthers();
  } else if (m.type === "state" && !m.you) {
    state.others[m.participant] = { participant: m.participant, name: m.name, state: m.state,
                                    status: m.state.paused ? "paused" : m.state.face ? "live" : "no_face" };
    renderOthers();
  } else if (m.type === "presence") {
    const t = state.others[m.participant] || { participant: m.participant, name: m.name, state: null };
    t.status = m.status === "online" ? "waiting" : "left";
    state.others[m.participant] = t; renderOthers();
  } else if (m.type === "ended") {
    state.ended = true; setStatus("The host ended the room. Your camera is off.");
    stopCamera();
  } else if (m.type === "error") {
    state.error = m.message; $("my-status").textContent = m.message;
  }
}

let stream = null;
async function startCamera() {
  stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  $("video").srcObject = stream;
  await $("video").play();
  $("placeholder").hidden = true;
}
function stopCamera() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null; $("video").srcObject = null; $("placeholder").hidden = false;
}

function topFace(r) {
  if (!r.faces.length) return null;
  return r.faces.reduce((a, b) => ((b.box_xyxy[2] - b.box_xyxy[0]) > (a.box_xyxy[2] - a.box_xyxy[0]) ? b : a));
}

async function loop() {
  let last = null, lastAt = 0;
  while (!state.ended) {
    const t0 = performance.now();
    let msg;
    if (state.paused) {
      msg = { type: "state", expression: null, probs: {}, face: false, paused: true };
    } else {
      const r = await engine.process($("video"), performance.now());
      const f = topFace(r);
      msg = f
        ? { type: "state", expression: f.expression, probs: Object.fromEntries(Object.entries(f.probs).map(([k, v]) => [k, Math.round(v * 1e4) / 1e4])), face: true, paused: false }
        : { type: "state", expression: null, probs: {}, face: false, paused: false };
      // probabilities rounded to 4 digits must still sum to 1 within the server's tolerance
    }
    state.expression = msg.expression;
    showMine(msg.expression, msg.face, msg.paused);
    const sig = `${msg.expression}|${msg.face}|${msg.paused}`;
    if (sig !== last || performance.now() - lastAt > 5000) {  // on change, and a heartbeat
      send(msg); last = sig; lastAt = performance.now();
    }
    await new Promise((res) => setTimeout(res, Math.max(50, 500 - (performance.now() - t0))));
  }
}

$("pause").addEventListener("change", () => { state.paused = $("pause").checked; $("my-status").textContent = state.paused ? "nothing but 'paused' is sent" : ""; });
document.querySelectorAll("[data-reaction]").forEach((b) => b.addEventListener("click", () => {
  send({ type: "reaction", reaction: b.dataset.reaction });
  $("my-status").textContent = `sent ${REACTION_EMOJI[b.dataset.reaction]}`;
}));

$("agree").addEventListener("click", async () => {
  $("join-status").textContent = "joining…";
  try {
    let me = JSON.parse(localStorage.getItem(key) || "null");
    if (!me) {
      const r = await fetch(`/v1/rooms/${roomId}/join`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code: $("code").value, display_name: $("name").value || null }) });
      const body = await r.json();
      if (!r.ok) throw new Error(body.message || `HTTP ${r.status}`);
      me = { token: body.participant_token, number: body.number, display_name: body.display_name };
      localStorage.setItem(key, JSON.stringify(me));
    }
    state.joined = true;
    $("consent").classList.add("hidden");
    $("room").classList.remove("hidden");
    style = await overlayStyle();
    socket = new RoomSocket(roomId, me.token, onMessage, setStatus);
    if (!onDeviceSupported()) throw new Error("this browser cannot run the on-device model (WebAssembly)");
    await startCamera();
    const catalog = await (await fetch("/v1/models")).json();
    const model = catalog.models.find((m) => m.name === catalog.default) || catalog.models[0];
    engine = await new OnDeviceEngine().init(model, catalog.alignment, "blazeface");
    loop();
  } catch (e) {
    state.error = String(e.message || e);
    $("join-status").textContent = `Could not join: ${state.error}`;
    $("my-status").textContent = state.error;
  }
});
