// Snapshots and recordings of the live picture with its overlays: the camera frame (mirrored as
// shown) with the overlay canvas on top, composed on a canvas of the video's size. Saved by the
// browser to this device, only when the user asks; nothing is uploaded.

/** Draw the video frame (mirrored when ``mirror``) and the overlay into ``out`` (resized). */
export function composeFrame(out, video, overlay, mirror) {
  const W = video.videoWidth, H = video.videoHeight;
  if (!W || !H) return false;
  if (out.width !== W || out.height !== H) { out.width = W; out.height = H; }
  const ctx = out.getContext("2d");
  ctx.save();
  if (mirror) { ctx.translate(W, 0); ctx.scale(-1, 1); }
  ctx.drawImage(video, 0, 0, W, H);
  ctx.restore();
  if (overlay && overlay.width) ctx.drawImage(overlay, 0, 0, W, H);
  return true;
}

/** A file name with the local date and time: emoar-2026-12-02-221530.png */
export function stampedName(ext) {
  const d = new Date(), p = (n) => String(n).padStart(2, "0");
  return `emoar-${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}.${ext}`;
}

/** Hand a blob to the browser as a download. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url; a.download = name; a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** The picture with its overlays as a PNG blob (null when the camera shows nothing). */
export async function snapshot(video, overlay, mirror) {
  const c = document.createElement("canvas");
  if (!composeFrame(c, video, overlay, mirror)) return null;
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

function recorderType() {
  if (typeof MediaRecorder === "undefined") return null;
  for (const t of ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm", "video/mp4"]) {
    if (MediaRecorder.isTypeSupported(t)) return t;
  }
  return "";
}

/**
 * Records the composed picture (camera + overlays) with MediaRecorder. ``frame()`` is called on
 * every animation frame while recording; the recording stops by itself after ``maxSeconds``
 * (memory stays bounded: chunks are held in memory until the user stops).
 */
export class Recorder {
  constructor({ fps = 30, bitsPerSecond = 2_500_000, maxSeconds = 600 } = {}) {
    this.fps = fps; this.bits = bitsPerSecond; this.maxSeconds = maxSeconds;
    this.canvas = document.createElement("canvas");
    this.rec = null; this.chunks = []; this.startedAt = 0; this.onAutoStop = null;
  }

  static supported() { return recorderType() !== null && !!HTMLCanvasElement.prototype.captureStream; }

  get recording() { return !!this.rec && this.rec.state === "recording"; }

  get seconds() { return this.recording ? (performance.now() - this.startedAt) / 1000 : 0; }

  start(video, overlay, mirror) {
    if (!Recorder.supported()) throw new Error("this browser cannot record a canvas (MediaRecorder)");
    if (!composeFrame(this.canvas, video, overlay, mirror)) throw new Error("the camera shows nothing yet");
    const type = recorderType();
    const stream = this.canvas.captureStream(this.fps);
    this.rec = new MediaRecorder(stream, { ...(type ? { mimeType: type } : {}), videoBitsPerSecond: this.bits });
    this.chunks = [];
    this.rec.ondataavailable = (e) => { if (e.data && e.data.size) this.chunks.push(e.data); };
    this.rec.start(1000);
    this.startedAt = performance.now();
  }

  /** Compose the current picture into the recorded canvas (once per animation frame). */
  frame(video, overlay, mirror) {
    if (!this.recording) return;
    composeFrame(this.canvas, video, overlay, mirror);
    if (this.seconds > this.maxSeconds && this.onAutoStop) this.onAutoStop();
  }

  /** Stop; resolves to {blob, seconds, type}. */
  stop() {
    const rec = this.rec;
    if (!rec) return Promise.resolve(null);
    const seconds = this.seconds;
    return new Promise((resolve) => {
      rec.onstop = () => {
        const type = rec.mimeType || "video/webm";
        const blob = new Blob(this.chunks, { type });
        this.chunks = []; this.rec = null;
        rec.stream.getTracks().forEach((t) => t.stop());
        resolve({ blob, seconds, type });
      };
      rec.stop();
    });
  }
}
