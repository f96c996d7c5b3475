// BlazeFace (MediaPipe's face detector) on onnxruntime-web, with detection on a schedule and
// tracking in between — the browser twin of emoar/detect/blazeface.py and emoar/detect/follow.py.
//
// The ONNX files are the ones the Python package ships (/assets/detectors/…; converted once from
// the @mediapipe/face_detection TF Lite models, Apache-2.0). Decoding follows MediaPipe's graphs:
// SSD anchors with fixed size, boxes and keypoints relative to the anchor centre, sigmoid scores,
// weighted non-maximum suppression at IoU 0.3. Between full detections each face is re-found by
// the short-range model on a square region around its previous box (MediaPipe's detection on a
// region of interest): a face that is not found there is lost and the frame is detected in full.
// When the near-face (short range) model finds nobody in a whole frame, the full-range model
// looks too, so groups and distant faces are found with the default setting.

import { iou } from "./track.js";

const VARIANTS = {
  short: { file: "blazeface_short_range", size: 128, strides: [8, 16, 16, 16], twoPerScale: true },
  full: { file: "blazeface_full_range", size: 192, strides: [4], twoPerScale: false },
};
const MIN_SCORE = 0.5;
const NMS_IOU = 0.3;
const ROI_SCALE = 2.0; // region side / face box side when following

function anchors(size, strides, twoPerScale) {
  const out = [];
  for (let i = 0; i < strides.length;) {
    let j = i, perCell = 0;
    while (j < strides.length && strides[j] === strides[i]) { perCell += twoPerScale ? 2 : 1; j++; }
    const cells = Math.ceil(size / strides[i]);
    for (let y = 0; y < cells; y++) {
      for (let x = 0; x < cells; x++) {
        for (let k = 0; k < perCell; k++) out.push([(x + 0.5) / cells, (y + 0.5) / cells]);
      }
    }
    i = j;
  }
  return out;
}

class BlazeFaceModel {
  static async create(ort, variant) {
    const v = VARIANTS[variant];
    const buf = await fetch(`/assets/detectors/${v.file}.onnx`).then((r) => {
      if (!r.ok) throw new Error(`detector download failed: HTTP ${r.status}`);
      return r.arrayBuffer();
    });
    const session = await ort.InferenceSession.create(buf, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    return new BlazeFaceModel(ort, session, v);
  }

  constructor(ort, session, v) {
    this.ort = ort;
    this.session = session;
    this.size = v.size;
    this.anchors = anchors(v.size, v.strides, v.twoPerScale);
    this.canvas = document.createElement("canvas");
    this.canvas.width = this.canvas.height = v.size;
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.input = new Float32Array(v.size * v.size * 3);
  }

  /**
   * Faces in the square region [rx, ry, side] of `source` (parts outside the frame are black),
   * in source pixels: [{box, landmarks (4 points: eyes, nose tip, mouth centre), score}].
   */
  async detect(source, rx, ry, side) {
    const S = this.size, ctx = this.ctx;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, S, S);
    ctx.drawImage(source, rx, ry, side, side, 0, 0, S, S);
    const px = ctx.getImageData(0, 0, S, S).data;
    const inp = this.input;
    for (let i = 0, j = 0; i < px.length; i += 4, j += 3) {
      inp[j] = px[i] / 127.5 - 1; inp[j + 1] = px[i + 1] / 127.5 - 1; inp[j + 2] = px[i + 2] / 127.5 - 1;
    }
    const feeds = { [this.session.inputNames[0]]: new this.ort.Tensor("float32", inp, [1, S, S, 3]) };
    const res = await this.session.run(feeds);
    const reg = res[this.session.outputNames[0]].data, cls = res[this.session.outputNames[1]].data;
    const cands = [];
    for (let a = 0; a < this.anchors.length; a++) {
      const score = 1 / (1 + Math.exp(-Math.max(-100, Math.min(100, cls[a]))));
      if (score < MIN_SCORE) continue;
      const [ax, ay] = this.anchors[a], o = a * 16;
      const cx = reg[o] / S + ax, cy = reg[o + 1] / S + ay, w = reg[o + 2] / S, h = reg[o + 3] / S;
      const pts = [];
      for (let k = 0; k < 4; k++) pts.push([reg[o + 4 + 2 * k] / S + ax, reg[o + 5 + 2 * k] / S + ay]);
      cands.push({ score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], pts });
    }
    const k = side; // region units -> source pixels
    return weightedNms(cands).map((d) => ({
      box: d.box.map((v, i) => (i % 2 ? ry : rx) + v * k),
      landmarks: d.pts.map(([x, y]) => [rx + x * k, ry + y * k]),
      score: d.score,
    }));
  }
}

/** MediaPipe's weighted NMS: each cluster becomes its score-weighted mean (box and keypoints). */
function weightedNms(cands) {
  let rest = cands.slice().sort((p, q) => q.score - p.score);
  const out = [];
  while (rest.length) {
    const first = rest[0];
    const cluster = rest.filter((c) => iou(first.box, c.box) > NMS_IOU);
    rest = rest.filter((c) => iou(first.box, c.box) <= NMS_IOU);
    const wsum = cluster.reduce((s, c) => s + c.score, 0);
    const box = [0, 1, 2, 3].map((i) => cluster.reduce((s, c) => s + c.box[i] * c.score, 0) / wsum);
    const pts = first.pts.map((_, k) => [0, 1].map((i) => cluster.reduce((s, c) => s + c.pts[k][i] * c.score, 0) / wsum));
    out.push({ score: first.score, box, pts });
  }
  return out;
}

/**
 * Detect, then follow. `detect(source, W, H)` returns faces in source pixels; the full detector
 * (short or full range on the letterboxed frame) runs every `detectEvery` frames, and whenever a
 * followed face is lost; in between, each face is re-found on a region around its last box.
 */
export class ScheduledBlazeFace {
  static async create(ort, variant = "short", detectEvery = 5) {
    const short = await BlazeFaceModel.create(ort, "short");
    const full = variant === "full" ? await BlazeFaceModel.create(ort, "full") : short;
    return new ScheduledBlazeFace(ort, full, short, detectEvery);
  }

  constructor(ort, full, follow, detectEvery) {
    this.ort = ort;
    this.full = full;
    this.follow = follow;
    this.far = full !== follow ? full : null; // the full-range model, loaded on first need
    this.detectEvery = detectEvery;
    this.reset();
  }

  /** Whole-frame detection; when the near-face model finds nobody, the far-face (full range)
   *  model looks too, so a group or a distant face is found without changing the setting. */
  async detectFrame(source, W, H) {
    const side = Math.max(W, H), x = (W - side) / 2, y = (H - side) / 2;
    const faces = await this.full.detect(source, x, y, side);
    if (faces.length || this.full !== this.follow) return faces;
    if (!this.far) this.far = await BlazeFaceModel.create(this.ort, "full");
    this.stats.far += 1;
    return this.far.detect(source, x, y, side);
  }

  reset() { this.faces = []; this.since = 0; this.stats = { full: 0, followed: 0, far: 0 }; }

  async detect(source, W, H) {
    if (this.faces.length && this.since < this.detectEvery - 1) {
      const next = [];
      for (const f of this.faces) {
        const bw = f.box[2] - f.box[0], bh = f.box[3] - f.box[1];
        const side = ROI_SCALE * Math.max(bw, bh);
        const cx = (f.box[0] + f.box[2]) / 2, cy = (f.box[1] + f.box[3]) / 2;
        const found = await this.follow.detect(source, cx - side / 2, cy - side / 2, side);
        if (!found.length) { next.length = 0; break; }
        next.push(found.reduce((p, q) => (iou(q.box, f.box) > iou(p.box, f.box) ? q : p)));
      }
      if (next.length === this.faces.length) {
        this.since += 1;
        this.stats.followed += 1;
        this.faces = dedupe(next);
        return this.faces;
      }
    }
    this.faces = await this.detectFrame(source, W, H);
    this.since = 0;
    this.stats.full += 1;
    return this.faces;
  }

  async close() { this.faces = []; }
}

function dedupe(faces) {
  const kept = [];
  for (const f of faces) if (kept.every((k) => iou(k.box, f.box) <= 0.5)) kept.push(f);
  return kept;
}
