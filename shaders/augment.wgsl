// SimSiam/SSQL augmentations of a batch of u8 images, one workgroup per image (torchvision
// semantics, float pipeline on values in [0, 1]):
//   RandomResizedCrop (bilinear, align_corners=False: half-pixel centres, edge clamp inside the
//   crop box) -> ColorJitter (brightness, contrast, saturation, hue in a per-image order;
//   brightness/contrast only for 1 channel) -> RandomGrayscale -> horizontal flip -> normalize.
// The flip is applied while sampling: the steps between are per pixel or use the image mean,
// so they commute with it.
//
// The CPU (ssql/data/augment.ts) turns each image's random parameters into a program of PRM
// floats. Brightness and saturation are both v -> clamp01(a v + b grey(v)) (brightness: b = 0),
// contrast is that with a v + (1 - a) mean; at most three ops precede or follow contrast and hue
// is one of them, so each side of contrast (a phase) is up to two such ops, hue, up to two more:
//   0 top, 1 left, 2 crop height, 3 crop width (source pixels), 4 flip (0/1),
//   5 contrast factor, 6 contrast on (0/1), 7 grayscale on (0/1),
//   8..15  phase 1 (the ops before contrast): (a, b) of the two ops before hue, of the two after,
//   16..23 phase 2 (the ops after contrast): the same,
//   24..27 phase 1: ops before hue, hue on (0/1), hue shift, ops after hue; 28..31 phase 2.
// Ops run in loops of as many turns as the image needs rather than under ifs: SwiftShader runs
// both sides of every if, but a loop only while some lane still needs it (all lanes of a
// workgroup share the image, so none waits for another).
//
// Src holds N x C x srcH x srcW bytes packed little-endian into u32 words. Each invocation
// handles QPER quads of 4 horizontally adjacent output pixels (quad lid + k*WG; a row has
// ceil(outW/4) quads, the last one partial unless ALIGNED), each channel a vec4; the quad
// shares its row's vertical weights and, when NARROW (crops never wider than the output), the
// two source words that hold its columns. Phase 1 samples and applies the ops before contrast,
// writes the result to Out (an invocation reads back only what it wrote itself, so no private
// array holds it: those are slow on both software adapters) and sums the grey values; one
// barrier gives the image's grey mean; phase 2 finishes each quad in place.
//
// Declared in ssql/data/augment.ts. Params: srcH, srcW, outH, outW, count, and the per-channel
// mean and stdev of the normalization. Bindings: Src, Prm -> Out. Defines: CHANNELS (1 or 3),
// WG (workgroup size), QPER = ceil(outH*ceil(outW/4) / WG), NARROW (outW >= srcW), ALIGNED
// (outW % 4 == 0).

// The interface generated from that declaration (struct Params, bindings, the defines) goes here:
#interface

const PRM: u32 = 32u;

var<workgroup> red: array<f32, WG>;

// Three channels of 4 pixels (1 channel: only r).
struct Quad {
  r: vec4<f32>,
  g: vec4<f32>,
  b: vec4<f32>,
}

fn grey(q: Quad) -> vec4<f32> {
  if (CHANNELS == 1u) {
    return q.r;
  }
  return 0.299 * q.r + 0.587 * q.g + 0.114 * q.b;
}

fn clamp01(v: vec4<f32>) -> vec4<f32> {
  return clamp(v, vec4<f32>(0.0), vec4<f32>(1.0));
}

// v -> clamp01(a v + b grey(v) + c).
fn linearOp(q: Quad, a: f32, b: f32, c: f32) -> Quad {
  let y = b * grey(q) + c;
  if (CHANNELS == 1u) {
    return Quad(clamp01(a * q.r + y), q.g, q.b);
  }
  return Quad(clamp01(a * q.r + y), clamp01(a * q.g + y), clamp01(a * q.b + y));
}

// torchvision's adjust_hue (_rgb2hsv, shift, _hsv2rgb) without branches or divisions but one.
// In hue sector i with fraction f, hsv2rgb picks each channel from v = max, p = v (1 - s) and
// q, t = v (1 - s f), v (1 - s (1 - f)); with s = (max - min) / max these are max, min,
// max - range f and min + range f, so saturation itself is never needed. Channel c with
// offset k = (H + n_c) mod 6 (n = 5, 3, 1 for r, g, b; H = 6 h) is
// max - range clamp(min(k, 4 - k), 0, 1), which makes the same pick in every sector.
fn shiftHue(q: Quad, shift: f32) -> Quad {
  let maxc = max(q.r, max(q.g, q.b));
  let minc = min(q.r, min(q.g, q.b));
  let range = maxc - minc;
  let inv = 1.0 / select(range, vec4<f32>(1.0), range == vec4<f32>(0.0));
  // 6 h: rgb2hsv's bc - gc, 2 + rc - bc, 4 + gc - rc (rc = (max - r) / range, ...).
  let h6 = select(select(4.0 + (q.r - q.g) * inv, 2.0 + (q.b - q.r) * inv, maxc == q.g), (q.g - q.b) * inv, maxc == q.r);
  let hs = h6 + 6.0 * shift;
  let hh = hs - 6.0 * floor(hs / 6.0);
  return Quad(hueChannel(hh + 5.0, maxc, range), hueChannel(hh + 3.0, maxc, range), hueChannel(hh + 1.0, maxc, range));
}

fn hueChannel(k0: vec4<f32>, maxc: vec4<f32>, range: vec4<f32>) -> vec4<f32> {
  let k = select(k0, k0 - 6.0, k0 >= vec4<f32>(6.0));
  return maxc - range * clamp(min(k, 4.0 - k), vec4<f32>(0.0), vec4<f32>(1.0));
}

// One phase of an image's program: nBefore linear ops (before0, then before1), hue if hue is 1,
// nAfter linear ops.
struct Phase {
  before0: vec2<f32>,
  before1: vec2<f32>,
  after0: vec2<f32>,
  after1: vec2<f32>,
  nBefore: u32,
  hue: u32,
  shift: f32,
  nAfter: u32,
}

fn loadPhase(base: u32, slots: u32, counts: u32) -> Phase {
  return Phase(
    vec2<f32>(Prm[base + slots], Prm[base + slots + 1u]), vec2<f32>(Prm[base + slots + 2u], Prm[base + slots + 3u]),
    vec2<f32>(Prm[base + slots + 4u], Prm[base + slots + 5u]), vec2<f32>(Prm[base + slots + 6u], Prm[base + slots + 7u]),
    u32(Prm[base + counts]), u32(Prm[base + counts + 1u]), Prm[base + counts + 2u], u32(Prm[base + counts + 3u]));
}

// Loops of 0, 1 or 2 turns, not ifs (see the top).
fn runPhase(q0: Quad, ph: Phase) -> Quad {
  var q = q0;
  for (var s = 0u; s < ph.nBefore; s++) {
    let c = select(ph.before0, ph.before1, s == 1u);
    q = linearOp(q, c.x, c.y, 0.0);
  }
  if (CHANNELS == 3u) {
    for (var s = 0u; s < ph.hue; s++) {
      q = shiftHue(q, ph.shift);
    }
  }
  for (var s = 0u; s < ph.nAfter; s++) {
    let c = select(ph.after0, ph.after1, s == 1u);
    q = linearOp(q, c.x, c.y, 0.0);
  }
  return q;
}

fn srcByte(i: u32) -> f32 {
  let w = Src[i >> 2u];
  return f32((w >> ((i & 3u) * 8u)) & 0xffu);
}

fn srcBytes(i: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(srcByte(i.x), srcByte(i.y), srcByte(i.z), srcByte(i.w));
}

// Bytes d of the 8 in words (w0, w1).
fn windowBytes(w0: u32, w1: u32, d: vec4<u32>) -> vec4<f32> {
  let w = select(vec4<u32>(w0), vec4<u32>(w1), d >= vec4<u32>(4u));
  return vec4<f32>((w >> ((d & vec4<u32>(3u)) * 8u)) & vec4<u32>(0xffu));
}

// One row of a quad, interpolated along x: bytes r + x0 and r + x1.
fn sampleRow(r: u32, x0: vec4<u32>, x1: vec4<u32>, lx: vec4<f32>) -> vec4<f32> {
  if (NARROW) {
    // The crop is at most as wide as the output, so the quad's columns lie within 5 bytes from
    // its leftmost (min(x0.x, x0.w): the columns rise or, flipped, fall along the quad), which
    // two words hold; loaded once rather than per pixel.
    let lo = r + min(x0.x, x0.w);
    let wi = lo >> 2u;
    let w0 = Src[wi];
    let w1 = Src[min(wi + 1u, arrayLength(&Src) - 1u)];
    let at = vec4<u32>(r - 4u * wi);
    return (1.0 - lx) * windowBytes(w0, w1, at + x0) + lx * windowBytes(w0, w1, at + x1);
  }
  return (1.0 - lx) * srcBytes(r + x0) + lx * srcBytes(r + x1);
}

// One channel of a quad: rows r0 and r1 (byte offsets of the crop's row start), columns x0 and
// x1 per pixel.
fn bilinear(r0: u32, r1: u32, x0: vec4<u32>, x1: vec4<u32>, lx: vec4<f32>, ly: f32) -> vec4<f32> {
  return ((1.0 - ly) * sampleRow(r0, x0, x1, lx) + ly * sampleRow(r1, x0, x1, lx)) / 255.0;
}

// A quad's pixels at o, o + 1, ... of each channel plane (npix apart), those in the row only
// (all of them when ALIGNED: rows of whole quads).
fn storeQuad(o: u32, npix: u32, q: Quad, inRow: vec4<bool>) {
  storeRow(o, q.r, inRow);
  if (CHANNELS == 3u) {
    storeRow(o + npix, q.g, inRow);
    storeRow(o + 2u * npix, q.b, inRow);
  }
}

fn storeRow(o: u32, v: vec4<f32>, inRow: vec4<bool>) {
  Out[o] = v.x;
  if (ALIGNED || inRow.y) { Out[o + 1u] = v.y; }
  if (ALIGNED || inRow.z) { Out[o + 2u] = v.z; }
  if (ALIGNED || inRow.w) { Out[o + 3u] = v.w; }
}

fn loadQuad(o: u32, npix: u32, inRow: vec4<bool>) -> Quad {
  var q: Quad;
  q.r = loadRow(o, inRow);
  if (CHANNELS == 3u) {
    q.g = loadRow(o + npix, inRow);
    q.b = loadRow(o + 2u * npix, inRow);
  }
  return q;
}

fn loadRow(o: u32, inRow: vec4<bool>) -> vec4<f32> {
  if (ALIGNED) {
    return vec4<f32>(Out[o], Out[o + 1u], Out[o + 2u], Out[o + 3u]);
  }
  // Past the row's end, the quad's first pixel again (loaded, never used).
  let last = vec4<u32>(o) + select(vec4<u32>(0u), vec4<u32>(0u, 1u, 2u, 3u), inRow);
  return vec4<f32>(Out[last.x], Out[last.y], Out[last.z], Out[last.w]);
}

// Where quad `quad` of the output lies: its row, its four columns, which of them are inside
// the row (the last quad of a row may stick out), and the output index of its first pixel.
struct QuadPos {
  oy: u32,
  ox: vec4<u32>,
  inRow: vec4<bool>,
  o: u32,
}

fn quadPos(quad: u32, quadsPerRow: u32, outBase: u32) -> QuadPos {
  let oy = quad / quadsPerRow;
  let ox = (quad - oy * quadsPerRow) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
  return QuadPos(oy, ox, ox < vec4<u32>(p.outW), outBase + oy * p.outW + ox.x);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lidv: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lidv.x;
  let n = wid.x;
  let base = n * PRM;
  let top = u32(Prm[base + 0u]);
  let left = u32(Prm[base + 1u]);
  let ch = u32(Prm[base + 2u]);
  let cw = u32(Prm[base + 3u]);
  let flip = Prm[base + 4u] != 0.0;
  let npix = p.outH * p.outW;
  let quadsPerRow = (p.outW + 3u) / 4u;
  let quads = p.outH * quadsPerRow;
  let scaleY = f32(ch) / f32(p.outH);
  let scaleX = f32(cw) / f32(p.outW);
  let plane = p.srcH * p.srcW;
  let imgBase = n * CHANNELS * plane;
  let outBase = n * CHANNELS * npix;
  let ph1 = loadPhase(base, 8u, 24u);

  // Phase 1: crop + bilinear resize (+ flip), the ops before contrast, the grey sum.
  var sum = 0.0;
  for (var k = 0u; k < QPER; k++) {
    let quad = lid + k * WG;
    if (quad < quads) {
      let qp = quadPos(quad, quadsPerRow, outBase);
      let oy = qp.oy;
      let inRow = qp.inRow;
      let oxc = min(qp.ox, vec4<u32>(p.outW - 1u));
      let fx = select(oxc, vec4<u32>(p.outW - 1u) - oxc, flip);
      let sy = max((f32(oy) + 0.5) * scaleY - 0.5, 0.0);
      let sx = max((vec4<f32>(fx) + 0.5) * scaleX - 0.5, vec4<f32>(0.0));
      let y0 = min(u32(floor(sy)), ch - 1u);
      let x0 = min(vec4<u32>(floor(sx)), vec4<u32>(cw - 1u));
      let y1 = min(y0 + 1u, ch - 1u);
      let x1 = min(x0 + 1u, vec4<u32>(cw - 1u));
      let ly = sy - f32(y0);
      let lx = sx - vec4<f32>(x0);
      let r0 = imgBase + (top + y0) * p.srcW + left;
      let r1 = imgBase + (top + y1) * p.srcW + left;
      var q: Quad;
      q.r = bilinear(r0, r1, x0, x1, lx, ly);
      if (CHANNELS == 3u) {
        q.g = bilinear(r0 + plane, r1 + plane, x0, x1, lx, ly);
        q.b = bilinear(r0 + 2u * plane, r1 + 2u * plane, x0, x1, lx, ly);
      }
      q = runPhase(q, ph1);
      sum += dot(select(vec4<f32>(0.0), grey(q), inRow), vec4<f32>(1.0));
      storeQuad(qp.o, npix, q, inRow);
    }
  }

  // The image's mean grey value (used only when contrast is on; the barrier stays in uniform
  // control flow at the top level, which keeps the kernel quick to compile on llvmpipe). Every
  // invocation adds the partial sums in the same order, so all get the same mean.
  red[lid] = sum;
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < WG; i++) {
    total += red[i];
  }
  let fc = Prm[base + 5u];
  let cm = (1.0 - fc) * (total / f32(npix));
  let contrastOn = u32(Prm[base + 6u]);
  let greyOn = u32(Prm[base + 7u]);
  let ph2 = loadPhase(base, 16u, 28u);

  // Phase 2: contrast, the remaining jitter ops, grayscale, normalize.
  for (var k = 0u; k < QPER; k++) {
    let quad = lid + k * WG;
    if (quad < quads) {
      let qp = quadPos(quad, quadsPerRow, outBase);
      let inRow = qp.inRow;
      let o = qp.o;
      var q = loadQuad(o, npix, inRow);
      for (var s = 0u; s < contrastOn; s++) {
        q = linearOp(q, fc, 0.0, cm);
      }
      q = runPhase(q, ph2);
      if (CHANNELS == 3u) {
        for (var s = 0u; s < greyOn; s++) {
          q = Quad(grey(q), grey(q), grey(q));
        }
      }
      let mean = p.mean;
      let stdev = p.stdev;
      storeQuad(o, npix, Quad((q.r - mean.x) / stdev.x, (q.g - mean.y) / stdev.y, (q.b - mean.z) / stdev.z), inRow);
    }
  }
}
