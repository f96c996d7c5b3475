// The live page's timeline: for each face on screen (its track), the expression probabilities of
// the last minute as a stacked band, newest on the right. Samples live only in this page's
// memory (a bounded window per track) and are dropped when the camera stops.

const LANE_PX = 34;      // CSS pixels per face lane
const GUTTER_PX = 38;    // left gutter with the face's number
const AXIS_PX = 16;      // bottom axis with the time marks
const GAP_MS = 1200;     // samples further apart than this are not joined (the face was away)

export class LiveTimeline {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} opts windowMs: the span shown; sampleMs: at most one sample per track this
   *   often; maxTracks: lanes shown (the most recently seen faces); drawEveryMs: redraw period
   */
  constructor(canvas, { windowMs = 60000, sampleMs = 200, maxTracks = 3, drawEveryMs = 250 } = {}) {
    this.canvas = canvas;
    this.windowMs = windowMs;
    this.sampleMs = sampleMs;
    this.maxTracks = maxTracks;
    this.drawEveryMs = drawEveryMs;
    this.tracks = new Map();  // track id -> {samples: [{t, p: number[]}], lastAt}
    this.drawnAt = 0;
    this.lanes = 0;
  }

  /** A result's faces (each with track_id, probs {label: p}) at time ``now`` (ms). */
  add(faces, labels, now) {
    for (const f of faces) {
      if (f.track_id == null || !f.probs) continue;
      let tr = this.tracks.get(f.track_id);
      if (!tr) { tr = { samples: [], lastAt: -Infinity }; this.tracks.set(f.track_id, tr); }
      if (now - tr.lastAt < this.sampleMs) continue;
      tr.lastAt = now;
      tr.samples.push({ t: now, p: labels.map((n) => f.probs[n] ?? 0), uncertain: !!f.uncertain });
    }
    this.trim(now);
  }

  trim(now) {
    for (const [id, tr] of this.tracks) {
      let k = 0;
      while (k < tr.samples.length && now - tr.samples[k].t > this.windowMs) k++;
      if (k) tr.samples.splice(0, k);
      if (!tr.samples.length) this.tracks.delete(id);
    }
  }

  clear() { this.tracks.clear(); this.drawnAt = 0; }

  /** Samples held (all tracks), for tests and the page's state. */
  get size() { let n = 0; for (const tr of this.tracks.values()) n += tr.samples.length; return n; }

  /** The tracks drawn: the most recently seen, in the order of their numbers. */
  shown() {
    return [...this.tracks.entries()]
      .sort((a, b) => b[1].lastAt - a[1].lastAt).slice(0, this.maxTracks)
      .sort((a, b) => a[0] - b[0]);
  }

  /** Redraw (at most every ``drawEveryMs`` unless ``force``). */
  draw(labels, colors, now, force = false) {
    if (!force && now - this.drawnAt < this.drawEveryMs) return false;
    this.drawnAt = now;
    this.trim(now);
    const c = this.canvas;
    const lanes = this.shown();
    this.lanes = lanes.length;
    const dpr = window.devicePixelRatio || 1;
    const cssW = Math.max(240, Math.round(c.clientWidth || 640));
    const cssH = Math.max(1, lanes.length) * LANE_PX + AXIS_PX;
    if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
      c.width = Math.round(cssW * dpr); c.height = Math.round(cssH * dpr);
      c.style.height = `${cssH}px`;
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const x0 = GUTTER_PX, x1 = cssW - 6, t0 = now - this.windowMs;
    const X = (t) => x0 + ((t - t0) / this.windowMs) * (x1 - x0);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    if (!lanes.length) {
      ctx.fillStyle = "#9aa0a8";
      ctx.fillText("No face yet: the timeline starts when a face is found.", x0, LANE_PX / 2);
    }
    lanes.forEach(([id, tr], lane) => {
      const top = lane * LANE_PX + 3, h = LANE_PX - 6;
      ctx.fillStyle = "#9aa0a8";
      ctx.fillText(`#${id}`, 6, top + h / 2);
      const s = tr.samples;
      for (let i = 0; i < s.length; i++) {
        // each sample fills until the next one (or a short step when the face left after it)
        const a = X(s[i].t);
        const next = i + 1 < s.length && s[i + 1].t - s[i].t <= GAP_MS ? s[i + 1].t : s[i].t + this.sampleMs;
        const b = Math.min(x1, X(next));
        if (b <= x0) continue;
        const xa = Math.max(x0, a);
        let y = top;
        labels.forEach((name, k) => {
          const hk = s[i].p[k] * h;
          if (hk > 0.05) {
            ctx.fillStyle = s[i].uncertain ? "#5a5f66" : (colors[name] || "#888");
            ctx.fillRect(xa, y, b - xa + 0.6, hk);
          }
          y += hk;
        });
      }
    });
    // time axis: marks every 10 s, "now" on the right
    const axisY = cssH - AXIS_PX / 2;
    ctx.fillStyle = "#9aa0a8";
    ctx.font = "10px system-ui, sans-serif";
    for (let sAgo = 60; sAgo >= 0; sAgo -= 10) {
      const x = X(now - sAgo * 1000);
      if (sAgo * 1000 > this.windowMs) continue;
      const text = sAgo === 0 ? "now" : `−${sAgo} s`;
      const w = ctx.measureText(text).width;
      ctx.fillText(text, Math.min(x1 - w, Math.max(x0, x - w / 2)), axisY);
    }
    return true;
  }
}
