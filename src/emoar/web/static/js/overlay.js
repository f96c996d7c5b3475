// AR overlays on a canvas: per face an emoji sprite (scaled with the face, tilted with the eye
// line), box corners, a label with confidence, probability bars and a quote bubble. The same
// look as the server renderer (emoar/overlay): colours, sprites and quotes come from the server
// (/assets/overlay.json, /assets/emoji/*.png, /assets/quotes.json).

import { eyeLineAngle } from "./align.js";

const MAX_TILT = 40;
const SMALL_FACE = 64;   // px: compact form below (emoji + short label)
const DETAIL_FACE = 120; // px: bars and quote from this size up ("full" style)
const STAY_MARGIN = 0.25; // an element keeps its side unless another is this much less covered

/** Load colours, sprites and quotes once. */
export async function loadOverlayAssets() {
  const [style, quotes] = await Promise.all([
    fetch("/assets/overlay.json").then((r) => r.json()),
    fetch("/assets/quotes.json").then((r) => r.json()),
  ]);
  const sprites = new Map();
  await Promise.all(style.sprites.map((name) => new Promise((resolve) => {
    const img = new Image();
    img.onload = () => { sprites.set(name, img); resolve(); };
    img.onerror = () => resolve();  // a missing sprite just is not drawn
    img.src = `/assets/emoji/${name}.png`;
  })));
  return { colors: style.colors, uncertainColor: style.uncertain_color, uncertainSprite: style.uncertain_sprite,
           sprites, quotes: quotes.quotes || {} };
}

function hashStr(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
  return h >>> 0;
}

/** A quote for a face, stable while its track keeps the same expression. */
export function quoteFor(assets, face) {
  const list = assets.quotes[face.uncertain ? "neutral" : face.expression] || assets.quotes.neutral || [];
  if (!list.length) return null;
  const key = `${face.track_id ?? "img"}:${face.expression}`;
  return list[hashStr(key) % list.length];
}

function inkFor(hex) {
  const r = parseInt(hex.slice(1, 3), 16) / 255, g = parseInt(hex.slice(3, 5), 16) / 255, b = parseInt(hex.slice(5, 7), 16) / 255;
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.55 ? "#1c1e22" : "#ffffff";
}

function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}

function wrap(ctx, text, maxWidth) {
  const words = text.split(/\s+/);
  const lines = [];
  let line = "";
  for (const w of words) {
    const t = line ? `${line} ${w}` : w;
    if (ctx.measureText(t).width > maxWidth && line) { lines.push(line); line = w; } else line = t;
  }
  if (line) lines.push(line);
  return lines;
}

function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

// MediaPipe face mesh contours (indices into its 468 points): face oval, lips, eyes, brows
const MESH_CONTOURS = [
  [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
   176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109, 10],
  [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185, 61],
  [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191, 78],
  [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246, 33],
  [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466, 263],
  [46, 53, 52, 65, 55], [276, 283, 282, 295, 285],
];

/** The face mesh: every point as a dot, the contours as lines in the expression's colour. */
function drawMesh(ctx, mesh, color, size) {
  ctx.save();
  const r = clamp(size / 220, 0.8, 2.2);
  ctx.fillStyle = "rgba(255,255,255,0.55)";
  ctx.beginPath();
  for (const [x, y] of mesh) { ctx.moveTo(x + r, y); ctx.arc(x, y, r, 0, 2 * Math.PI); }
  ctx.fill();
  if (mesh.length >= 468) {
    ctx.strokeStyle = color;
    ctx.globalAlpha = 0.85;
    ctx.lineWidth = clamp(size / 160, 1, 3);
    ctx.lineJoin = "round";
    ctx.beginPath();
    for (const line of MESH_CONTOURS) {
      line.forEach((k, i) => (i ? ctx.lineTo(...mesh[k]) : ctx.moveTo(...mesh[k])));
    }
    ctx.stroke();
  }
  ctx.restore();
}

/** Occupied rectangles, so later elements avoid covering earlier ones and other faces. */
class Placer {
  constructor(w, h, faces) { this.w = w; this.h = h; this.taken = faces.map((f) => f.box.slice()); }
  cost(r) {
    let c = 0;
    if (r[0] < 0 || r[1] < 0 || r[2] > this.w || r[3] > this.h) c += 10;
    for (const t of this.taken) {
      const ix = Math.max(0, Math.min(r[2], t[2]) - Math.max(r[0], t[0]));
      const iy = Math.max(0, Math.min(r[3], t[3]) - Math.max(r[1], t[1]));
      c += (ix * iy) / Math.max(1, (r[2] - r[0]) * (r[3] - r[1]));
    }
    return c;
  }
  /** The cheapest candidate, or the one chosen last time (``prev``, an index) while it is nearly
   *  as good: an element changes side only when it must, never back and forth between frames. */
  best(cands, prev = -1) {
    let best = null, bc = Infinity, bi = -1;
    cands.forEach((r, i) => { const c = this.cost(r); if (c < bc) { bc = c; best = r; bi = i; } });
    if (prev >= 0 && prev < cands.length && prev !== bi) {
      const pc = this.cost(cands[prev]);
      if (pc < 1 && pc <= bc + STAY_MARGIN) return { rect: cands[prev], cost: pc, index: prev };
    }
    return { rect: best, cost: bc, index: bi };
  }
  take(r) { this.taken.push(r); }
}

/**
 * Draw overlays for faces (boxes/landmarks in canvas pixels).
 *
 * @param {CanvasRenderingContext2D} ctx
 * @param {object[]} faces {box, landmarks, expression, probs: {label: p}, uncertain, track_id}
 * @param {object} opts {style: "full"|"minimal"|"emoji", labels: string[], showBars, showQuote}
 * @param {object} assets from loadOverlayAssets()
 * @returns {number} number of faces drawn
 */
export function drawOverlay(ctx, faces, opts, assets) {
  const W = ctx.canvas.width, H = ctx.canvas.height;
  const placer = new Placer(W, H, faces);
  // Big faces first: they get the best spots for their bars and bubbles.
  const order = faces.map((f, i) => i).sort((a, b) => faceSize(faces[b]) - faceSize(faces[a]));
  const memory = opts.memory || null;  // PlacementMemory: where each track's elements went last time
  for (const i of order) {
    const f = faces[i];
    const mem = memory && f.track_id != null ? memory.get(f.track_id) : {};
    drawFace(ctx, f, opts, assets, placer, mem);
  }
  if (memory) memory.sweep();
  return faces.length;
}

/** Where each track's overlay elements were placed (side indices), so they stay there. One per
 *  stream; entries of tracks not drawn for ``maxAge`` draws are dropped. */
export class PlacementMemory {
  constructor(maxAge = 90) { this.maxAge = maxAge; this.draw = 0; this.byTrack = new Map(); }
  get(trackId) {
    let m = this.byTrack.get(trackId);
    if (!m) { m = {}; this.byTrack.set(trackId, m); }
    m.seen = this.draw;
    return m;
  }
  sweep() {
    this.draw += 1;
    for (const [id, m] of this.byTrack) if (this.draw - m.seen > this.maxAge) this.byTrack.delete(id);
  }
  clear() { this.byTrack.clear(); }
}

function faceSize(f) { return Math.max(f.box[2] - f.box[0], f.box[3] - f.box[1]); }

function drawFace(ctx, f, opts, assets, placer, mem) {
  const late = [];  // painted last: the label chip stays readable over a bubble's tail
  drawFaceParts(ctx, f, opts, assets, placer, mem, late);
  for (const paint of late) paint();
}

function drawFaceParts(ctx, f, opts, assets, placer, mem, late) {
  const [x1, y1, x2, y2] = f.box;
  const w = x2 - x1, h = y2 - y1, size = Math.max(w, h);
  const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
  const color = f.uncertain ? assets.uncertainColor : (assets.colors[f.expression] || assets.uncertainColor);
  const tier = size < SMALL_FACE ? "compact" : size >= DETAIL_FACE ? "detail" : "standard";
  const angle = clamp(eyeLineAngle(f.landmarks), -MAX_TILT, MAX_TILT) * Math.PI / 180;
  const top = f.probs ? Math.max(...Object.values(f.probs)) : 0;
  // capitalised like the server renderer's chip ("Neutral 84%")
  const word = f.uncertain ? "uncertain" : f.expression;
  const labelText = word.charAt(0).toUpperCase() + word.slice(1);
  const k = opts.uiScale || 1;  // canvas pixels per screen pixel (> 1 on a small screen)

  // Face mesh (the "Face mesh landmarks" finder), beneath everything else.
  if (f.mesh && f.mesh.length && opts.style !== "emoji") drawMesh(ctx, f.mesh, color, size);

  // Box corners.
  if (opts.style !== "emoji") {
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = Math.max(2, size / 60);
    ctx.lineCap = "round";
    const c = size * 0.18;
    ctx.beginPath();
    for (const [px, py, dx, dy] of [[x1, y1, 1, 1], [x2, y1, -1, 1], [x1, y2, 1, -1], [x2, y2, -1, -1]]) {
      ctx.moveTo(px + dx * c, py); ctx.lineTo(px, py); ctx.lineTo(px, py + dy * c);
    }
    ctx.stroke();
    ctx.restore();
  }

  // Emoji: a sticker over the face ("emoji" style) or a badge above the head, turned with it.
  const sprite = assets.sprites.get(f.uncertain ? assets.uncertainSprite : f.expression) || assets.sprites.get("neutral");
  if (sprite) {
    const e = opts.style === "emoji" ? size * 1.15 : clamp(size * 0.42, 24, 220);
    let ex = cx, ey = cy;
    if (opts.style !== "emoji") {
      const off = h / 2 + e * 0.55;  // above the head, along the head's up direction
      ex = cx + Math.sin(angle) * off;
      ey = cy - Math.cos(angle) * off;
      // no room above: beside the head instead (and back above only with room to spare)
      const beside = mem.emoji === "beside" ? ey - e / 2 < e * 0.3 : ey - e / 2 < 0;
      mem.emoji = beside ? "beside" : "above";
      if (beside) { ex = x2 + e * 0.55; ey = y1 + e * 0.5; }
    }
    ctx.save();
    ctx.translate(ex, ey);
    ctx.rotate(angle);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(sprite, -e / 2, -e / 2, e, e);
    ctx.restore();
    placer.take([ex - e / 2, ey - e / 2, ex + e / 2, ey + e / 2]);
  }
  if (opts.style === "emoji") return;

  // Label chip under the face.
  const fs = clamp(Math.round(size * (tier === "compact" ? 0.2 : 0.09)), Math.round(11 * k), Math.round(28 * k));
  ctx.save();
  ctx.font = `600 ${fs}px system-ui, sans-serif`;
  const text = tier === "compact" ? labelText : `${labelText} ${Math.round(top * 100)}%`;
  const tw = ctx.measureText(text).width, pad = fs * 0.45;
  const lw = tw + 2 * pad, lh = fs * 1.5;
  let lx = clamp(cx - lw / 2, 0, ctx.canvas.width - lw);
  let ly = y2 + fs * 0.35;
  const above = mem.label === "above" ? ly + lh > ctx.canvas.height - lh * 0.5 : ly + lh > ctx.canvas.height;
  mem.label = above ? "above" : "below";
  if (above) ly = y1 - lh - fs * 0.35;
  ctx.restore();
  late.push(() => {
    ctx.save();
    ctx.font = `600 ${fs}px system-ui, sans-serif`;
    ctx.fillStyle = color;
    roundRect(ctx, lx, ly, lw, lh, lh / 2);
    ctx.fill();
    ctx.fillStyle = inkFor(color);
    ctx.textBaseline = "middle";
    ctx.fillText(text, lx + pad, ly + lh / 2);
    ctx.restore();
  });
  placer.take([lx, ly, lx + lw, ly + lh]);

  if (opts.style !== "full" || tier !== "detail") return;

  // Probability bars beside the face.
  if (opts.showBars && f.probs) {
    const labels = opts.labels || Object.keys(f.probs);
    const bfs = clamp(Math.round(size * 0.055), Math.round(10 * k), Math.round(16 * k));
    const rowH = bfs * 1.45, labelW = bfs * 4.6, barW = bfs * 6, padB = bfs * 0.6;
    const pw = labelW + barW + 3 * padB + bfs * 2.2, ph = labels.length * rowH + 2 * padB;
    const cands = [[x2 + 10, y1], [x1 - 10 - pw, y1], [x2 + 10, y2 - ph], [x1 - 10 - pw, y2 - ph],
                   [cx - pw / 2, y2 + lh + 12]]
      // slid into the frame (as the bubble's are): near an edge the panel slides along it
      // rather than jumping to the other side of the face
      .map(([px, py]) => [clamp(px, 0, ctx.canvas.width - pw), clamp(py, 0, ctx.canvas.height - ph)])
      .map(([px, py]) => [px, py, px + pw, py + ph]);
    const { rect, cost, index } = placer.best(cands, mem.bars ?? -1);
    if (rect && cost < 1) {
      mem.bars = index;
      placer.take(rect);
      const [px, py] = rect;
      ctx.save();
      ctx.globalAlpha = 0.72;
      ctx.fillStyle = "#1c2026";
      roundRect(ctx, px, py, pw, ph, bfs * 0.6);
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.font = `${bfs}px system-ui, sans-serif`;
      ctx.textBaseline = "middle";
      labels.forEach((name, k) => {
        const p = f.probs[name] ?? 0;
        const ry = py + padB + k * rowH + rowH / 2;
        ctx.fillStyle = name === f.expression && !f.uncertain ? "#ffffff" : "#b2b2b2";
        ctx.fillText(name, px + padB, ry);
        ctx.fillStyle = "rgba(255,255,255,0.12)";
        ctx.fillRect(px + padB * 2 + labelW, ry - rowH * 0.3, barW, rowH * 0.6);
        ctx.fillStyle = assets.colors[name] || assets.uncertainColor;
        ctx.fillRect(px + padB * 2 + labelW, ry - rowH * 0.3, Math.max(1, barW * p), rowH * 0.6);
        ctx.fillStyle = "#ececec";
        ctx.fillText(`${Math.round(p * 100)}`, px + padB * 3 + labelW + barW, ry);
      });
      ctx.restore();
    }
  }

  // Quote bubble, with a tail towards the face.
  const q = opts.showQuote ? quoteFor(assets, f) : null;
  if (q) {
    const qfs = clamp(Math.round(size * 0.06), Math.round(11 * k), Math.round(17 * k));
    ctx.save();
    ctx.font = `italic ${qfs}px Georgia, serif`;
    // Narrow enough to fit beside the face when there is room there (left or right).
    const side = Math.max(x1, ctx.canvas.width - x2) - 28 - 1.4 * qfs;
    // the wrap width moves in 40-px steps (and only by a step's margin), so the bubble does not
    // re-wrap its lines on every frame of a moving face
    let maxW = clamp(Math.min(size * 1.3, side), 140, 300);
    if (mem.quoteW && Math.abs(maxW - mem.quoteW) < 40) maxW = mem.quoteW;
    else maxW = mem.quoteW = Math.round(maxW / 20) * 20;
    const lines = wrap(ctx, `“${q.text}”`, maxW);
    const by = `— ${q.author}`;
    const bylineFont = `${qfs * 0.9}px system-ui, sans-serif`;
    let textW = Math.max(...lines.map((l) => ctx.measureText(l).width));
    ctx.font = bylineFont;
    textW = Math.max(textW, ctx.measureText(by).width);
    ctx.font = `italic ${qfs}px Georgia, serif`;
    const padQ = qfs * 0.7, lineH = qfs * 1.3;
    const bw = textW + 2 * padQ, bh = (lines.length + 1) * lineH + 2 * padQ;
    const cands = [[x1 - 14 - bw, y1 - bh * 0.3], [x2 + 14, y1 - bh * 0.3], [cx - bw / 2, y1 - bh - 16],
                   [x1 - 14 - bw, y2 - bh], [x2 + 14, y2 - bh], [cx - bw / 2, y2 + lh + 16]]
      .map(([px, py]) => [clamp(px, 0, ctx.canvas.width - bw), clamp(py, 0, ctx.canvas.height - bh)])
      .map(([px, py]) => [px, py, px + bw, py + bh]);
    const { rect, cost, index } = placer.best(cands, mem.quote ?? -1);
    if (rect && cost < 1) {
      mem.quote = index;
      placer.take(rect);
      const [bx, byy] = rect;
      // A short tail from the bubble edge towards the face (the point below the eyes).
      const bcx = bx + bw / 2, bcy = byy + bh / 2;
      let dx = cx - bcx, dy = cy + h * 0.2 - bcy;
      const dl = Math.hypot(dx, dy) || 1;
      dx /= dl; dy /= dl;
      const reach = Math.min(dx ? bw / 2 / Math.abs(dx) : Infinity, dy ? bh / 2 / Math.abs(dy) : Infinity);
      const baseX = bcx + dx * (reach - 2), baseY = bcy + dy * (reach - 2);
      const tail = qfs * 1.5, half = qfs * 0.55;
      const tail3 = [[baseX - dy * half, baseY + dx * half], [baseX + dx * tail, baseY + dy * tail],
                     [baseX + dy * half, baseY - dx * half]];
      ctx.fillStyle = "rgba(252,252,252,0.95)";
      ctx.strokeStyle = "rgba(40,36,33,0.35)";
      ctx.lineWidth = 1;
      roundRect(ctx, bx, byy, bw, bh, qfs * 0.8);
      ctx.fill();
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(...tail3[0]); ctx.lineTo(...tail3[1]); ctx.lineTo(...tail3[2]);
      ctx.fillStyle = "rgb(252,252,252)";
      ctx.fill();
      ctx.beginPath();
      ctx.moveTo(...tail3[0]); ctx.lineTo(...tail3[1]); ctx.lineTo(...tail3[2]);
      ctx.stroke();
      ctx.fillStyle = "#28241f";
      ctx.textBaseline = "top";
      lines.forEach((l, k) => ctx.fillText(l, bx + padQ, byy + padQ + k * lineH));
      ctx.font = bylineFont;
      ctx.fillStyle = "#787069";
      ctx.fillText(by, bx + padQ, byy + padQ + lines.length * lineH);
      ctx.restore();
    }
  }
}
