// On-device mode: MediaPipe face detection (or face mesh) + our ONNX expression classifier on
// onnxruntime-web (wasm), all served by this server from static/vendor/. Frames never leave the
// browser. Alignment and preprocessing mirror emoar/align.py (see align.js).

import { alignmentMatrix, oodScore, preprocessInto, warpGray } from "./align.js";
import { ScheduledBlazeFace } from "./blazeface.js";
import { IouTracker, ProbabilitySmoother } from "./track.js";

const VENDOR = "/static/vendor";
const scriptsLoaded = new Map();

/** Load a classic script once (the vendored UMD builds define globals). */
export function loadScript(src) {
  if (!scriptsLoaded.has(src)) {
    scriptsLoaded.set(src, new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.async = true;
      s.onload = () => resolve();
      s.onerror = () => reject(new Error(`Could not load ${src}; run scripts/setup.sh to vendor the front-end files`));
      document.head.appendChild(s);
    }));
  }
  return scriptsLoaded.get(src);
}

/** Whether this browser can run on-device mode at all. */
export function onDeviceSupported() {
  return typeof WebAssembly === "object" && typeof WebAssembly.instantiate === "function";
}

async function createOrtSession(model) {
  await loadScript(`${VENDOR}/onnxruntime-web/ort.wasm.min.js`);
  const ort = window.ort;
  ort.env.wasm.wasmPaths = `${VENDOR}/onnxruntime-web/`;
  // wasm threads need SharedArrayBuffer, i.e. a cross-origin isolated page (COOP/COEP headers).
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
  const buf = await fetch(model.onnx_url).then((r) => {
    if (!r.ok) throw new Error(`model download failed: HTTP ${r.status}`);
    return r.arrayBuffer();
  });
  const session = await ort.InferenceSession.create(buf, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  return { ort, session };
}

/**
 * MediaPipe face_detection result -> {box, landmarks, score} in pixels. Its keypoints have a
 * mouth centre, not corners: 4 points (eyes, nose tip, mouth centre), which align.js fits to the
 * template's mouth-corner midpoint.
 */
function detectionToFace(det, W, H) {
  const bb = det.boundingBox;
  const box = [(bb.xCenter - bb.width / 2) * W, (bb.yCenter - bb.height / 2) * H,
               (bb.xCenter + bb.width / 2) * W, (bb.yCenter + bb.height / 2) * H];
  const k = det.landmarks || [];
  // face_detection keypoints: 0 right eye (image-left), 1 left eye, 2 nose tip, 3 mouth centre, 4-5 ears
  const landmarks = k.length >= 4 ? [0, 1, 2, 3].map((i) => [k[i].x * W, k[i].y * H]) : null;
  const score = Array.isArray(det.V) && det.V.length ? det.V[0].score : (det.score ?? 1);
  return { box, landmarks, score };
}

/** The model's probabilities normalised and temperature-scaled as the server does
 * (classify.py apply_temperature: softmax(log(p) / T)). */
export function calibrated(p, T) {
  const s = p.reduce((a, b) => a + b, 0) || 1;
  if (T === 1) return p.map((v) => v / s);
  const z = p.map((v) => Math.log(Math.max(v / s, 1e-12)) / T);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const t = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / t);
}

function meshToFace(points, W, H) {
  let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
  for (const p of points) {
    x1 = Math.min(x1, p.x * W); y1 = Math.min(y1, p.y * H);
    x2 = Math.max(x2, p.x * W); y2 = Math.max(y2, p.y * H);
  }
  const mid = (a, b) => [(points[a].x + points[b].x) / 2 * W, (points[a].y + points[b].y) / 2 * H];
  const pt = (a) => [points[a].x * W, points[a].y * H];
  // Eye centres from the eye corners; mouth corners 61 (image-left) and 291.
  const landmarks = [mid(33, 133), mid(362, 263), pt(1), pt(61), pt(291)];
  const mesh = points.map((p) => [Math.round(p.x * W * 10) / 10, Math.round(p.y * H * 10) / 10]);
  return { box: [x1, y1, x2, y2], landmarks, mesh, score: 1 };
}

/**
 * The whole on-device pipeline: detect -> align -> classify (+OOD) -> track -> smooth.
 */
export class OnDeviceEngine {
  constructor() {
    this.detectorName = "blazeface";
    this.model = null;
    this.alignment = null;
    this.tracker = new IouTracker();
    this.smoother = new ProbabilitySmoother();
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this._results = null;
  }

  /**
   * @param {object} model an entry of GET /v1/models "models"
   * @param {object} alignment GET /v1/models "alignment"
   * @param {string} detector "blazeface" | "blazeface_full" (BlazeFace on onnxruntime-web, detected
   *   every 5 frames and followed in between) | "short" | "full" (MediaPipe's face detection
   *   solution) | "mesh" (face mesh)
   */
  async init(model, alignment, detector = "blazeface") {
    this.alignment = alignment;
    await this.setModel(model);
    await this.setDetector(detector);
    return this;
  }

  async setModel(model) {
    if (this.model && this.model.name === model.name) return;
    const { ort, session } = await createOrtSession(model);
    this.ort = ort;
    this.session = session;
    this.model = model;
    this.reset();
  }

  async setDetector(name) {
    if (this.detector && this.detectorName === name) return;
    if (this.detector) { try { await this.detector.close(); } catch { /* already closed */ } }
    this.detectorName = name;
    this.blazeface = null;
    if (name === "blazeface" || name === "blazeface_full") {
      this.detector = await ScheduledBlazeFace.create(this.ort, name === "blazeface_full" ? "full" : "short", 5);
      this.blazeface = this.detector;
      this.reset();
      return;
    }
    if (name === "mesh") {
      await loadScript(`${VENDOR}/mediapipe/face_mesh/face_mesh.js`);
      this.detector = new window.FaceMesh({ locateFile: (f) => `${VENDOR}/mediapipe/face_mesh/${f}` });
      this.detector.setOptions({ maxNumFaces: 4, refineLandmarks: false, minDetectionConfidence: 0.5,
                                 minTrackingConfidence: 0.5, selfieMode: false });
    } else {
      await loadScript(`${VENDOR}/mediapipe/face_detection/face_detection.js`);
      this.detector = new window.FaceDetection({ locateFile: (f) => `${VENDOR}/mediapipe/face_detection/${f}` });
      this.detector.setOptions({ model: name === "full" ? "full" : "short", minDetectionConfidence: 0.5,
                                 selfieMode: false });
    }
    this.detector.onResults((r) => { this._results = r; });
    await this.detector.initialize();
    this.reset();
  }

  /**
   * The detector name given to align.js: "mediapipe_short" | "mediapipe_full" | "mediapipe_mesh".
   * Only the box framing depends on it (fallback crops and the scale sanity check); MediaPipe's
   * framing is not measured in emoar.align.FER_BOX_48, so YuNet's applies, as align.py does for
   * any unknown detector name. See the top of align.js.
   */
  get alignDetector() {
    if (this.blazeface) return "blazeface_short";  // its boxes (the follower's) are measured in FER_BOX_48
    return `mediapipe_${this.detectorName}`;
  }

  reset() { this.tracker.reset(); this.smoother.reset(); if (this.blazeface) this.blazeface.reset(); }

  /** How many frames were detected in full and how many followed (BlazeFace detectors). */
  get detectionStats() { return this.blazeface ? { ...this.blazeface.stats } : null; }

  /**
   * Analyse one frame.
   * @param {HTMLVideoElement|HTMLCanvasElement|HTMLImageElement} source
   * @param {number} timestampMs
   * @returns {Promise<{width, height, faces: object[], speed_ms: object}>}
   */
  async process(source, timestampMs) {
    const W = source.videoWidth || source.naturalWidth || source.width;
    const H = source.videoHeight || source.naturalHeight || source.height;
    if (!W || !H) return { width: 0, height: 0, faces: [], speed_ms: {} };
    if (this.canvas.width !== W || this.canvas.height !== H) { this.canvas.width = W; this.canvas.height = H; }
    const t0 = performance.now();
    this.ctx.drawImage(source, 0, 0, W, H);  // one snapshot for both detection and the crops
    let dets;
    if (this.blazeface) {
      dets = (await this.blazeface.detect(this.canvas, W, H)).map((d) => ({ ...d }));
    } else {
      this._results = null;
      await this.detector.send({ image: this.canvas });
      const r = this._results || {};
      dets = this.detectorName === "mesh"
        ? (r.multiFaceLandmarks || []).map((pts) => meshToFace(pts, W, H))
        : (r.detections || []).map((d) => detectionToFace(d, W, H));
    }
    dets = dets.filter((d) => d.box[2] - d.box[0] > 4 && d.box[3] - d.box[1] > 4);
    const t1 = performance.now();
    const faces = dets.length ? await this.classify(dets, W, H) : [];
    const t2 = performance.now();
    const ids = this.tracker.update(dets.map((d) => d.box));
    const labels = this.model.labels;
    const sm = this.smoother.update(ids, faces.map((f) => f.p), timestampMs);
    const out = dets.map((d, i) => ({
      box_xyxy: d.box.map((v) => Math.round(v * 10) / 10),
      score: d.score,
      expression: labels[sm.labels[i]],
      probs: Object.fromEntries(labels.map((n, k) => [n, sm.probs[i][k]])),
      ood_score: faces[i].ood,
      uncertain: faces[i].ood > this.model.ood_threshold,
      track_id: ids[i],
      landmarks_xy: d.landmarks,
      ...(d.mesh ? { mesh_xy: d.mesh } : {}),
    }));
    return { width: W, height: H, faces: out,
             speed_ms: { detect: t1 - t0, classify: t2 - t1, total: performance.now() - t0 } };
  }

  async classify(dets, W, H) {
    const [ih, iw] = this.model.input_size;
    const img = this.ctx.getImageData(0, 0, W, H).data;
    const n = dets.length, plane = ih * iw;
    const input = new Float32Array(n * plane);
    dets.forEach((d, i) => {
      const m = alignmentMatrix(this.alignment, d, ih, this.alignDetector);
      const gray = warpGray(img, W, H, m, ih, this.alignment.max_supersample);
      preprocessInto(input, i * plane, gray, this.model.mean, this.model.std);
    });
    const tensor = new this.ort.Tensor("float32", input, [n, 1, ih, iw]);
    const feeds = { [this.session.inputNames[0]]: tensor };
    // the output the OOD quantiles describe: "ood" (face / non-face head), "rmd" in older files
    const oodName = this.model.ood_output || "rmd";
    const withOod = this.session.outputNames.includes(oodName) && this.model.ood_quantiles.length > 0;
    const res = await this.session.run(feeds, withOod ? ["probs", oodName] : ["probs"]);
    const probs = res.probs.data, C = this.model.labels.length;
    return dets.map((d, i) => {
      const p = calibrated(Array.from(probs.slice(i * C, (i + 1) * C)), this.model.temperature || 1);
      return { p, ood: withOod ? oodScore(res[oodName].data[i], this.model.ood_quantiles) : 0 };
    });
  }

  /** Classify given crops directly (for tests): faces [{box, landmarks}] on an image element. */
  async debugCrops(source, faces) {
    const W = source.naturalWidth || source.videoWidth || source.width;
    const H = source.naturalHeight || source.videoHeight || source.height;
    this.canvas.width = W; this.canvas.height = H;
    this.ctx.drawImage(source, 0, 0, W, H);
    const img = this.ctx.getImageData(0, 0, W, H).data;
    const [ih] = this.model.input_size;
    return faces.map((d) => Array.from(warpGray(img, W, H, alignmentMatrix(this.alignment, d, ih, this.alignDetector),
                                                 ih, this.alignment.max_supersample)));
  }

  async close() {
    if (this.detector) { try { await this.detector.close(); } catch { /* ignore */ } }
    this.detector = null;
  }
}
