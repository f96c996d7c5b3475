// Track ids and probability smoothing for on-device mode: a small mirror of emoar/track.py
// (IoU matching with a centroid fallback) and emoar/smooth.py (time-aware EMA with hysteresis),
// with the same defaults, so overlays are as steady as in server mode.

export function iou(a, b) {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return u > 0 ? inter / u : 0;
}

function size(b) { return Math.sqrt(Math.max(1e-6, (b[2] - b[0]) * (b[3] - b[1]))); }

/** Greedy IoU tracker: stable integer ids for boxes across frames. */
export class IouTracker {
  constructor({ iouThreshold = 0.3, maxAge = 30, maxCenterDistance = 1.0, maxScaleChange = 2.0 } = {}) {
    Object.assign(this, { iouThreshold, maxAge, maxCenterDistance, maxScaleChange });
    this.reset();
  }

  reset() { this.tracks = []; this.nextId = 1; }

  /** @param {number[][]} boxes [x1, y1, x2, y2] per detection. @returns {number[]} ids */
  update(boxes) {
    const ids = new Array(boxes.length).fill(-1);
    const used = new Set();
    const pairs = [];
    this.tracks.forEach((t, ti) => boxes.forEach((b, di) => {
      const v = iou(t.box, b);
      if (v >= this.iouThreshold) pairs.push([v, ti, di]);
    }));
    pairs.sort((p, q) => q[0] - p[0]);
    const matchedT = new Set();
    for (const [, ti, di] of pairs) {
      if (matchedT.has(ti) || used.has(di)) continue;
      matchedT.add(ti); used.add(di); ids[di] = this.tracks[ti].id;
      this.tracks[ti].box = boxes[di]; this.tracks[ti].missed = 0;
    }
    // Centroid fallback for fast motion (boxes that no longer overlap enough).
    boxes.forEach((b, di) => {
      if (used.has(di)) return;
      let best = -1, bestD = Infinity;
      this.tracks.forEach((t, ti) => {
        if (matchedT.has(ti)) return;
        const s = size(t.box), r = size(b) / s;
        if (r > this.maxScaleChange || r < 1 / this.maxScaleChange) return;
        const d = Math.hypot((b[0] + b[2] - t.box[0] - t.box[2]) / 2, (b[1] + b[3] - t.box[1] - t.box[3]) / 2) / s;
        if (d <= this.maxCenterDistance && d < bestD) { best = ti; bestD = d; }
      });
      if (best >= 0) {
        matchedT.add(best); used.add(di); ids[di] = this.tracks[best].id;
        this.tracks[best].box = b; this.tracks[best].missed = 0;
      }
    });
    this.tracks.forEach((t, ti) => { if (!matchedT.has(ti)) t.missed += 1; });
    this.tracks = this.tracks.filter((t) => t.missed <= this.maxAge);
    boxes.forEach((b, di) => {
      if (ids[di] >= 0) return;
      const t = { id: this.nextId++, box: b, missed: 0 };
      this.tracks.push(t); ids[di] = t.id;
    });
    return ids;
  }
}

/** Per-track exponential smoothing of probabilities (half-life in ms) with label hysteresis. */
export class ProbabilitySmoother {
  constructor({ halfLifeMs = 130, hysteresis = 0.1, maxAge = 30 } = {}) {
    Object.assign(this, { halfLifeMs, hysteresis, maxAge });
    this.reset();
  }

  reset() { this.state = new Map(); }

  /**
   * @param {number[]} ids track ids (negative = not smoothed)
   * @param {number[][]} probs per face
   * @param {number} timestampMs
   * @returns {{probs: number[][], labels: number[]}} smoothed probabilities and shown label index
   */
  update(ids, probs, timestampMs) {
    const seen = new Set();
    const out = probs.map((p, i) => {
      const id = ids[i];
      const top = p.indexOf(Math.max(...p));
      if (id < 0) return { p, label: top };
      seen.add(id);
      const s = this.state.get(id);
      if (!s) {
        this.state.set(id, { p: p.slice(), t: timestampMs, label: top, missed: 0 });
        return { p, label: top };
      }
      const dt = Math.max(0, timestampMs - s.t);
      const w = 1 - Math.pow(0.5, dt / this.halfLifeMs);
      s.p = s.p.map((v, k) => (1 - w) * v + w * p[k]);
      const sum = s.p.reduce((a, b) => a + b, 0) || 1;
      s.p = s.p.map((v) => v / sum);
      s.t = timestampMs; s.missed = 0;
      const best = s.p.indexOf(Math.max(...s.p));
      if (best !== s.label && s.p[best] >= s.p[s.label] + this.hysteresis) s.label = best;
      return { p: s.p.slice(), label: s.label };
    });
    for (const [id, s] of this.state) {
      if (!seen.has(id) && ++s.missed > this.maxAge) this.state.delete(id);
    }
    return { probs: out.map((o) => o.p), labels: out.map((o) => o.label) };
  }
}
