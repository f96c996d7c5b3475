// Face alignment and preprocessing in the browser: a mirror of emoar/align.py and
// emoar/preprocess.py, so on-device mode feeds the ONNX classifier the same crops as the server.
//
// The constants (template, box framing, fit weights, thresholds, supersampling limit) are not
// hard-coded here: they come from GET /v1/models ("alignment"), which reads them from
// emoar.align; mean/std/labels/OOD quantiles come from the model's own metadata (the "models"
// entries). Coordinates follow align.py: crop pixel centres at integers (cv2.warpAffine
// convention), landmarks are (x, y) points in pixels, boxes are edges.
//
// Which branch of align.py applies to the browser's detectors (MediaPipe):
// - Landmarks (the normal case): the similarity fit onto alignment.template_48
//   (FER_TEMPLATE_48), fitted from the template to the landmarks and inverted, exactly as
//   align.landmark_alignment_matrix. face_mesh gives all 5 points (eye centres from the eye
//   corners, nose tip, mouth corners). face_detection has a mouth centre instead of the two
//   corners: its 4th point is fitted to the template's mouth-corner midpoint with the two
//   corners' summed weight (the 5-point objective without the unknown mouth width); the
//   residual is the same weighted RMS, so the same max_fit_residual applies.
// - Box framing (the fallback, and the reference scale of the max_scale_ratio check):
//   alignment.box_48[detector]. MediaPipe's framing was never measured on FER2013, so
//   box_48 has no entry for it and, like align.box_alignment_matrix for any unknown detector
//   name, YuNet's framing is used. The caller passes its real detector name
//   ("mediapipe_short", "mediapipe_full", "mediapipe_mesh"), so a measured entry served
//   later would be picked up without changing this file.

/** Template scaled to a size x size crop (align.fer_template). */
export function ferTemplate(alignment, size) {
  const k = size / alignment.size;
  return alignment.template_48.map(([x, y]) => [(x + 0.5) * k - 0.5, (y + 0.5) * k - 0.5]);
}

/** align._check_size: an integer crop side of at least 8 pixels. */
function checkSize(size) {
  if (!Number.isInteger(size) || size < 8) throw new Error(`size must be an integer >= 8 pixels, got ${size}`);
  return size;
}

/**
 * Weighted least-squares similarity (no reflection) mapping src points onto dst
 * (align._fit_similarity). Returns {m: [[a, -b, tx], [b, a, ty]], resid} with resid the
 * weighted RMS residual in dst units (m null and resid Infinity when src has no spread).
 */
export function fitSimilarity(src, dst, weights) {
  const n = src.length;
  const wsum = weights.reduce((s, w) => s + w, 0);
  const w = weights.map((v) => v / wsum);
  let zx = 0, zy = 0, tx = 0, ty = 0;
  for (let i = 0; i < n; i++) {
    zx += w[i] * src[i][0]; zy += w[i] * src[i][1];
    tx += w[i] * dst[i][0]; ty += w[i] * dst[i][1];
  }
  let denom = 0, ar = 0, ai = 0;
  for (let i = 0; i < n; i++) {
    const zr = src[i][0] - zx, zi = src[i][1] - zy;
    const tr = dst[i][0] - tx, ti = dst[i][1] - ty;
    denom += w[i] * (zr * zr + zi * zi);
    // tc * conj(zc)
    ar += w[i] * (tr * zr + ti * zi);
    ai += w[i] * (ti * zr - tr * zi);
  }
  if (!Number.isFinite(denom) || denom < 1e-12) return { m: null, resid: Infinity };
  ar /= denom; ai /= denom;
  // b = t_mean - a * z_mean
  const bx = tx - (ar * zx - ai * zy);
  const by = ty - (ai * zx + ar * zy);
  let r = 0;
  for (let i = 0; i < n; i++) {
    const px = ar * src[i][0] - ai * src[i][1] + bx - dst[i][0];
    const py = ai * src[i][0] + ar * src[i][1] + by - dst[i][1];
    r += w[i] * (px * px + py * py);
  }
  return { m: [[ar, -ai, bx], [ai, ar, by]], resid: Math.sqrt(r) };
}

/**
 * Axis-aligned crop framing a detector box like FER2013 faces (align.box_alignment_matrix).
 * Unknown detector names (MediaPipe's included) use YuNet's framing, as in align.py.
 */
export function boxAlignmentMatrix(alignment, box, size, detector = "yunet") {
  size = checkSize(size);
  const [x1, y1, x2, y2] = box.map(Number);
  const w = x2 - x1, h = y2 - y1;
  if (!(Number.isFinite(w) && Number.isFinite(h) && w > 0 && h > 0)) {
    throw new Error(`Cannot align a face box with no area: box_xyxy=${box}`);
  }
  const [cx, cy, tw, th] = Object.hasOwn(alignment.box_48, detector) ? alignment.box_48[detector] : alignment.box_48.yunet;
  const k = size / alignment.size;
  const s = k / Math.max(w / tw, h / th);  // crop pixels per frame pixel
  const tx = k * cx - s * (x1 + x2) / 2 + (s - 1) * 0.5;
  const ty = k * cy - s * (y1 + y2) / 2 + (s - 1) * 0.5;
  return [[s, 0, tx], [0, s, ty]];
}

function det2(m) { return m[0][0] * m[1][1] - m[0][1] * m[1][0]; }

/**
 * Least-squares similarity taking the landmarks onto the FER template
 * (align.landmark_alignment_matrix): fitted from the template to the landmarks (the template
 * is exact, the landmarks are noisy; the other direction shrinks the scale), then inverted.
 *
 * @param landmarks 5 points in align.py order, or 4 with the mouth centre last (see the top).
 * @returns {{m: number[][] | null, resid: number}} frame -> crop matrix and the weighted RMS
 *   residual as a fraction of the template's eye distance (m null, resid Infinity when the
 *   landmarks are degenerate or not 4/5 finite points).
 */
export function landmarkAlignmentMatrix(alignment, landmarks, size) {
  size = checkSize(size);
  const bad = { m: null, resid: Infinity };
  const lm = landmarks;
  if (!lm || (lm.length !== 5 && lm.length !== 4) || lm.some((p) => !Number.isFinite(p[0]) || !Number.isFinite(p[1]))) {
    return bad;
  }
  const tpl = ferTemplate(alignment, size);
  let dst = tpl, weights = alignment.fit_weights;
  if (lm.length === 4) {
    dst = [tpl[0], tpl[1], tpl[2], [(tpl[3][0] + tpl[4][0]) / 2, (tpl[3][1] + tpl[4][1]) / 2]];
    weights = [weights[0], weights[1], weights[2], weights[3] + weights[4]];
  }
  // inv: template (crop pixels) -> landmarks (frame pixels); resid in frame pixels.
  const { m: inv, resid } = fitSimilarity(dst, lm, weights);
  if (!inv) return bad;
  const scale = Math.hypot(inv[0][0], inv[1][0]);
  if (!Number.isFinite(resid) || !(scale >= 1e-9)) return bad;
  const eye = Math.hypot(tpl[1][0] - tpl[0][0], tpl[1][1] - tpl[0][1]);
  return { m: invertAffine(inv), resid: resid / scale / eye };
}

/**
 * Frame -> crop matrix for one face (align.alignment_matrix): the landmark fit when present
 * and consistent (residual <= max_fit_residual, scale within max_scale_ratio of the box's),
 * the box framing otherwise.
 *
 * @param face {box: [x1, y1, x2, y2], landmarks: 5 (or 4, see the top) points or null}
 * @param detector name of the detector that produced face (chooses the box framing).
 */
export function alignmentMatrix(alignment, face, size, detector = "yunet") {
  const boxM = boxAlignmentMatrix(alignment, face.box, size, detector);
  if (!face.landmarks) return boxM;
  const { m, resid } = landmarkAlignmentMatrix(alignment, face.landmarks, size);
  if (!m || !Number.isFinite(resid) || resid > alignment.max_fit_residual) return boxM;
  const ratio = Math.sqrt(Math.abs(det2(m))) / boxM[0][0];
  if (!(1 / alignment.max_scale_ratio <= ratio && ratio <= alignment.max_scale_ratio)) return boxM;
  return m;
}

/** Inverse of a 2x3 affine matrix. */
export function invertAffine(m) {
  const d = det2(m);
  const a = m[1][1] / d, b = -m[0][1] / d, c = -m[1][0] / d, e = m[0][0] / d;
  return [[a, b, -(a * m[0][2] + b * m[1][2])], [c, e, -(c * m[0][2] + e * m[1][2])]];
}

/**
 * Warp an RGBA frame to a size x size 8-bit gray crop (align._warp_gray): bilinear, border
 * replicated, and for faces bigger than the crop rendered f x larger then box-averaged
 * (f = floor(1 / scale), at most maxSupersample), as OpenCV's warpAffine + INTER_AREA do.
 *
 * @param {Uint8ClampedArray} rgba frame pixels (ImageData.data), width x height
 * @param {number} maxSupersample GET /v1/models alignment.max_supersample (align.MAX_SUPERSAMPLE)
 * @returns {Uint8Array} size * size gray pixels, row-major
 */
export function warpGray(rgba, width, height, m, size, maxSupersample) {
  size = checkSize(size);
  if (!Number.isInteger(maxSupersample) || maxSupersample < 1) {
    throw new Error(`maxSupersample must be a positive integer (alignment.max_supersample), got ${maxSupersample}`);
  }
  const scale = Math.sqrt(Math.abs(det2(m)));
  const f = scale > 0 ? Math.min(maxSupersample, Math.max(1, Math.floor(1 / scale))) : 1;
  // Big-image matrix: mf = m * f, translation + (f - 1) / 2; sample the frame at inv(mf)(u, v).
  const mf = [[m[0][0] * f, m[0][1] * f, m[0][2] * f + (f - 1) / 2],
              [m[1][0] * f, m[1][1] * f, m[1][2] * f + (f - 1) / 2]];
  const inv = invertAffine(mf);
  const out = new Uint8Array(size * size);
  const xmax = width - 1, ymax = height - 1;
  const gray = (x, y) => {
    const i = (y * width + x) * 4;
    return 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
  };
  const inv2 = 1 / (f * f);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      let acc = 0;
      for (let dv = 0; dv < f; dv++) {
        const v = i * f + dv;
        for (let du = 0; du < f; du++) {
          const u = j * f + du;
          let x = inv[0][0] * u + inv[0][1] * v + inv[0][2];
          let y = inv[1][0] * u + inv[1][1] * v + inv[1][2];
          x = Math.min(Math.max(x, 0), xmax);
          y = Math.min(Math.max(y, 0), ymax);
          const x0 = Math.floor(x), y0 = Math.floor(y);
          const x1 = Math.min(x0 + 1, xmax), y1 = Math.min(y0 + 1, ymax);
          const ax = x - x0, ay = y - y0;
          const top = gray(x0, y0) * (1 - ax) + gray(x1, y0) * ax;
          const bot = gray(x0, y1) * (1 - ax) + gray(x1, y1) * ax;
          acc += top * (1 - ay) + bot * ay;
        }
      }
      out[i * size + j] = Math.min(255, Math.max(0, Math.round(acc * inv2)));
    }
  }
  return out;
}

/** (x / 255 - mean) / std into a Float32Array at offset (preprocess.preprocess). */
export function preprocessInto(dst, offset, gray, mean, std) {
  for (let i = 0; i < gray.length; i++) dst[offset + i] = (gray[i] / 255 - mean) / std;
}

/** OOD score in [0, 1] of the model's OOD output v: np.interp(v, quantiles, linspace(0, 1, n), left=0, right=1). */
export function oodScore(v, quantiles) {
  const n = quantiles.length;
  if (!n || !Number.isFinite(v)) return 0;
  if (v < quantiles[0]) return 0;
  if (v > quantiles[n - 1]) return 1;
  // np.interp: the last i with q[i] <= v, then linear between i and i + 1.
  let lo = 0, hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (quantiles[mid] <= v) lo = mid; else hi = mid;
  }
  if (v === quantiles[n - 1]) return 1;
  const q0 = quantiles[lo], q1 = quantiles[hi];
  const l0 = lo / (n - 1), l1 = hi / (n - 1);
  return q1 > q0 ? l0 + (v - q0) / (q1 - q0) * (l1 - l0) : l1;
}

/** Eye-line tilt in degrees (clockwise on screen); 0 without landmarks. */
export function eyeLineAngle(landmarks) {
  if (!landmarks || landmarks.length < 2) return 0;
  const dx = landmarks[1][0] - landmarks[0][0], dy = landmarks[1][1] - landmarks[0][1];
  if (!(dx > 0)) return 0;
  return Math.atan2(dy, dx) * 180 / Math.PI;
}
