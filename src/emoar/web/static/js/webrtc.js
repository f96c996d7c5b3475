// WebRTC server mode: the camera goes to the server as a WebRTC video track (the browser's own
// encoder, congestion control and frame dropping), results come back on a data channel as the
// websocket's result messages. The offer/answer is one POST /v1/webrtc/offer (ICE candidates
// gathered first, no STUN/TURN: loopback and LAN). The server analyses only the newest frame, so
// results never lag behind the camera; `process()` waits for the next result.

const NO_RESULT_MS = 3000;

function iceGathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);  // host candidates come at once; do not wait for more
  });
}

export class WebRTCEngine {
  constructor() {
    this.pc = null;
    this.channel = null;
    this.model = null;
    this.stream = null;
    this.waiter = null;
    this.lastError = null;
    this.id = null;
    this.received = 0;
  }

  /** Connect with a model, sending the camera ``stream``'s video track. */
  async init(model, stream) {
    await this.close();
    if (!stream || !stream.getVideoTracks().length) throw new Error("WebRTC mode needs the camera: press Start camera");
    this.model = model;
    this.stream = stream;
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    const channel = pc.createDataChannel("emoar", { ordered: false, maxRetransmits: 0 });
    this.channel = channel;
    channel.onmessage = (ev) => this._onMessage(JSON.parse(ev.data));
    const opened = new Promise((resolve, reject) => {
      channel.onopen = resolve;
      setTimeout(() => reject(new Error("WebRTC: the data channel did not open within 15 s")), 15000);
    });
    for (const track of stream.getVideoTracks()) {
      const sender = pc.addTrack(track, stream);
      const params = sender.getParameters();  // favour frame rate and latency over resolution
      params.degradationPreference = "maintain-framerate";
      sender.setParameters(params).catch(() => {});
    }
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, 2000);
    const r = await fetch("/v1/webrtc/offer", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer", model: model.name }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(`${r.status}: ${body.message || "the server refused the WebRTC offer"}`);
    this.id = body.id;
    await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
    await opened;
    return this;
  }

  _onMessage(msg) {
    if (msg.type === "result") {
      this.received += 1;
      const w = this.waiter;
      this.waiter = null;
      if (w) w(msg);
    } else if (msg.type === "error") {
      this.lastError = msg.message;
    }
  }

  /** The next result from the server (boxes in ``source``'s pixels). */
  async process(source) {
    const state = this.pc ? this.pc.connectionState : "closed";
    if (["failed", "closed", "disconnected"].includes(state)) {
      const now = performance.now();
      if (this.model && (!this.lastReconnect || now - this.lastReconnect > 2000)) {
        this.lastReconnect = now;
        await this.init(this.model, this.stream);
      } else {
        throw new Error(`WebRTC connection ${state} (reconnecting)`);
      }
    }
    const W = source.videoWidth, H = source.videoHeight;
    const t0 = performance.now();
    const msg = await new Promise((resolve) => {
      this.waiter = resolve;
      setTimeout(() => { if (this.waiter === resolve) { this.waiter = null; resolve(null); } }, NO_RESULT_MS);
    });
    if (!msg) return { faces: [], width: W, height: H, speed_ms: {}, error: "no result from the server for 3 s" };
    // the browser may send a smaller picture than the camera's (bandwidth adaptation)
    const sx = W && msg.width ? W / msg.width : 1, sy = H && msg.height ? H / msg.height : 1;
    for (const f of msg.faces) {
      f.box_xyxy = [f.box_xyxy[0] * sx, f.box_xyxy[1] * sy, f.box_xyxy[2] * sx, f.box_xyxy[3] * sy];
      if (f.landmarks_xy) f.landmarks_xy = f.landmarks_xy.map(([x, y]) => [x * sx, y * sy]);
    }
    msg.width = W || msg.width; msg.height = H || msg.height;
    msg.speed_ms = { ...(msg.speed_ms || {}), wait: performance.now() - t0 };
    return msg;
  }

  reset() {
    if (this.channel && this.channel.readyState === "open") this.channel.send(JSON.stringify({ type: "reset" }));
  }

  async close() {
    const pc = this.pc;
    this.pc = null;
    if (this.waiter) { const w = this.waiter; this.waiter = null; w(null); }
    if (pc) { try { pc.close(); } catch { /* already closed */ } }
    this.channel = null;
  }
}
