// Overlay motion between results. The page draws on every animation frame, but results arrive
// at the inference rate (15-30 per second on-device) and describe the frame captured when the
// inference started. Drawing the last result's boxes as they are makes the overlay jump at each
// result and trail a moving face by the inference latency. Instead each track's box is
// predicted forward from its last two results (constant velocity, at most MAX_LEAD_MS ahead of
// the capture time) and the drawn box eases towards that prediction (time constant TAU_MS), so
// it moves at the display rate and stays on the face.

const TAU_MS = 60;
const MAX_LEAD_MS = 80;

export class MotionSmoother {
  constructor({ tauMs = TAU_MS, maxLeadMs = MAX_LEAD_MS } = {}) {
    this.tau = tauMs;
    this.maxLead = maxLeadMs;
    this.tracks = new Map();  // track id -> {box, t, v, shown, drawnAt}
  }

  /** A new result: ``faces`` (display pixels, each with ``track_id`` and ``box``) of the frame
   *  captured at ``tCapture`` (performance.now() milliseconds). */
  update(faces, tCapture) {
    const seen = new Set();
    for (const f of faces) {
      if (f.track_id == null) continue;
      seen.add(f.track_id);
      const s = this.tracks.get(f.track_id);
      if (!s) {
        this.tracks.set(f.track_id, { box: f.box.slice(), t: tCapture, v: [0, 0, 0, 0], shown: f.box.slice(), drawnAt: null });
        continue;
      }
      const dt = tCapture - s.t;
      if (dt > 0) {
        const size = Math.max(1, s.box[2] - s.box[0]);
        const v = f.box.map((b, i) => (b - s.box[i]) / dt);
        // a jump of more than half a face between results is a re-detection, not motion
        const jump = Math.abs(f.box[0] - s.box[0]) + Math.abs(f.box[2] - s.box[2]) > size;
        s.v = jump ? [0, 0, 0, 0] : s.v.map((o, i) => 0.7 * o + 0.3 * v[i]);
      }
      s.box = f.box.slice();
      s.t = tCapture;
    }
    for (const id of [...this.tracks.keys()]) if (!seen.has(id)) this.tracks.delete(id);
  }

  /** ``faces`` with the boxes (and landmarks, shifted alike) to draw at time ``now``. */
  at(faces, now) {
    return faces.map((f) => {
      const s = f.track_id == null ? null : this.tracks.get(f.track_id);
      if (!s) return f;
      const lead = Math.min(this.maxLead, Math.max(0, now - s.t));
      const target = s.box.map((b, i) => b + s.v[i] * lead);
      const a = s.drawnAt == null ? 1 : 1 - Math.exp(-Math.max(0, now - s.drawnAt) / this.tau);
      s.shown = s.shown.map((b, i) => b + (target[i] - b) * a);
      s.drawnAt = now;
      const dx = (s.shown[0] + s.shown[2] - f.box[0] - f.box[2]) / 2;
      const dy = (s.shown[1] + s.shown[3] - f.box[1] - f.box[3]) / 2;
      const landmarks = f.landmarks ? f.landmarks.map(([x, y]) => [x + dx, y + dy]) : f.landmarks;
      const mesh = f.mesh ? f.mesh.map(([x, y]) => [x + dx, y + dy]) : f.mesh;
      return { ...f, box: s.shown.slice(), landmarks, mesh };
    });
  }

  clear() { this.tracks.clear(); }
}
