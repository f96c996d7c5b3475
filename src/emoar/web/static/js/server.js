// Server mode: JPEG frames over WS /v1/stream, per-frame JSON results back (track ids and
// smoothing live on the server, one state per connection). One frame in flight at a time, so
// results never queue up behind the camera; the next frame's JPEG is encoded while the server
// works on the current one.

const MAX_SIDE = 640;     // frames are downscaled to this longer side before JPEG encoding
const JPEG_QUALITY = 0.8;

export class ServerEngine {
  constructor() {
    this.ws = null;
    this.model = null;
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.pending = null;   // {resolve, reject, scale}
    this.lastError = null;
  }

  /** Connect (or reconnect) to the stream with a model. */
  async init(model) {
    await this.close();
    this.model = model;
    this.next = null;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/v1/stream?model=${encodeURIComponent(model.name)}`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("websocket: no hello from the server")), 10000);
      ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        if (msg.type === "hello") { clearTimeout(timer); resolve(msg); } else if (msg.type === "error") {
          clearTimeout(timer); reject(new Error(msg.message));
        }
      };
      ws.onerror = () => { clearTimeout(timer); reject(new Error("websocket connection failed")); };
    });
    ws.onmessage = (ev) => this._onMessage(JSON.parse(ev.data));
    ws.onclose = () => {
      if (this.pending) { this.pending.reject(new Error("websocket closed")); this.pending = null; }
    };
    return this;
  }

  _onMessage(msg) {
    const p = this.pending;
    if (msg.type === "result" && p) {
      this.pending = null;
      const s = p.scale;
      for (const f of msg.faces) {
        f.box_xyxy = f.box_xyxy.map((v) => v / s);
        if (f.landmarks_xy) f.landmarks_xy = f.landmarks_xy.map(([x, y]) => [x / s, y / s]);
      }
      msg.width = Math.round(msg.width / s); msg.height = Math.round(msg.height / s);
      p.resolve(msg);
    } else if (msg.type === "error") {
      this.lastError = msg.message;
      if (p) { this.pending = null; p.resolve({ faces: [], error: msg.message, width: 0, height: 0, speed_ms: {} }); }
    }
  }

  /** Send one frame; resolves with the server's result (boxes in source pixels). */
  async process(source) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      // The server restarted or the network dropped: reconnect, at most every 2 s.
      const now = performance.now();
      if (this.model && (!this.lastReconnect || now - this.lastReconnect > 2000)) {
        this.lastReconnect = now;
        await this.init(this.model);
      } else {
        throw new Error("websocket is not open (reconnecting)");
      }
    }
    const W = source.videoWidth || source.naturalWidth || source.width;
    const H = source.videoHeight || source.naturalHeight || source.height;
    if (!W || !H) return { faces: [], width: 0, height: 0, speed_ms: {} };
    // The JPEG of this frame was usually encoded while the server worked on the previous one
    // (still one frame in flight: results never queue up behind the camera).
    let next = this.next;
    this.next = null;
    if (!next || next.W !== W || next.H !== H || performance.now() - next.at > 100) next = await this._encode(source, W, H);
    const t0 = performance.now();
    const result = await new Promise((resolve, reject) => {
      this.pending = { resolve, reject, scale: next.scale };
      this.ws.send(next.buf);
      this._encode(source, W, H).then((e) => { this.next = e; }, () => { this.next = null; });
    });
    result.speed_ms = { ...(result.speed_ms || {}), total: performance.now() - t0 };
    return result;
  }

  async _encode(source, W, H) {
    const scale = Math.min(1, MAX_SIDE / Math.max(W, H));
    const w = Math.round(W * scale), h = Math.round(H * scale);
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
    const at = performance.now();
    this.ctx.drawImage(source, 0, 0, w, h);
    const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    return { buf: await blob.arrayBuffer(), scale, W, H, at };
  }

  reset() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "reset" }));
  }

  async close() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(); } catch { /* ignore */ }
    }
  }
}
