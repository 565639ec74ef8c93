// SimSiam/SSQL augmentations of a batch of u8 images, one workgroup per image (torchvision
// semantics, float pipeline on values in [0, 1]):
//   RandomResizedCrop (bilinear, align_corners=False: half-pixel centres, edge clamp inside the
//   crop box) -> ColorJitter (brightness, contrast, saturation, hue in a per-image order;
//   brightness/contrast only for 1 channel) -> RandomGrayscale -> horizontal flip -> normalize.
// The flip is applied while sampling: the steps between are per pixel or use the image mean,
// so they commute with it.
//
// Src holds N x C x srcH x srcW bytes packed little-endian into u32 words. Prm holds 16 floats
// per image, drawn on the CPU (ssql/data/augment.ts):
//   0 top, 1 left, 2 crop height, 3 crop width, 4 flip (0/1), 5 jitter on (0/1),
//   6 brightness, 7 contrast, 8 saturation, 9 hue, 10 grayscale (0/1),
//   11..14 the jitter order (op ids 0 brightness, 1 contrast, 2 saturation, 3 hue; ids >= 4
//   are skipped), 15 unused.
// Each invocation owns PER output pixels (pixel lid + k*WG), kept in registers for the whole
// pipeline; the contrast step needs the image's mean grey value at that point, a workgroup
// reduction between the two phases (ops before contrast, then contrast and the ops after it).
//
// Declared in ssql/data/augment.ts. Params: srcH, srcW, outH, outW, count, and the per-channel
// mean and stdev of the normalization. Bindings: Src, Prm -> Out. Defines: CHANNELS (1 or 3),
// WG (workgroup size), PER = ceil(outH*outW / WG).

// The interface generated from that declaration (struct Params, bindings, the defines) goes here:
#interface

const PRM: u32 = 16u;

var<workgroup> red: array<f32, WG>;

fn srcByte(i: u32) -> f32 {
  let w = Src[i >> 2u];
  return f32((w >> ((i & 3u) * 8u)) & 0xffu);
}

fn gray(v: vec3<f32>) -> f32 {
  if (CHANNELS == 1u) {
    return v.x;
  }
  return 0.299 * v.x + 0.587 * v.y + 0.114 * v.z;
}

fn clamp01(v: vec3<f32>) -> vec3<f32> {
  return clamp(v, vec3<f32>(0.0), vec3<f32>(1.0));
}

// torchvision's _rgb2hsv / adjust_hue / _hsv2rgb.
fn shiftHue(v: vec3<f32>, shift: f32) -> vec3<f32> {
  let r = v.x;
  let g = v.y;
  let b = v.z;
  let maxc = max(r, max(g, b));
  let minc = min(r, min(g, b));
  let eqc = maxc == minc;
  let cr = maxc - minc;
  let s = cr / select(maxc, 1.0, eqc);
  let crd = select(cr, 1.0, eqc);
  let rc = (maxc - r) / crd;
  let gc = (maxc - g) / crd;
  let bc = (maxc - b) / crd;
  var h: f32;
  if (maxc == r) {
    h = bc - gc;
  } else if (maxc == g) {
    h = 2.0 + rc - bc;
  } else {
    h = 4.0 + gc - rc;
  }
  h = fract(h / 6.0 + 1.0);
  h = fract(h + shift);
  let h6 = h * 6.0;
  let fi = floor(h6);
  let f = h6 - fi;
  let i = u32(fi) % 6u;
  let val = maxc;
  let pp = clamp(val * (1.0 - s), 0.0, 1.0);
  let q = clamp(val * (1.0 - s * f), 0.0, 1.0);
  let t = clamp(val * (1.0 - s * (1.0 - f)), 0.0, 1.0);
  switch (i) {
    case 0u: { return vec3<f32>(val, t, pp); }
    case 1u: { return vec3<f32>(q, val, pp); }
    case 2u: { return vec3<f32>(pp, val, t); }
    case 3u: { return vec3<f32>(pp, q, val); }
    case 4u: { return vec3<f32>(t, pp, val); }
    default: { return vec3<f32>(val, pp, q); }
  }
}

// One per-pixel colour op (everything but contrast); ids >= 4 (and RGB-only ops on 1 channel)
// leave the pixel unchanged.
fn pixelOp(op: u32, v: vec3<f32>, base: u32) -> vec3<f32> {
  if (op == 0u) {
    return clamp01(v * Prm[base + 6u]);
  }
  if (CHANNELS == 3u) {
    if (op == 2u) {
      let f = Prm[base + 8u];
      return clamp01(f * v + (1.0 - f) * gray(v));
    }
    if (op == 3u) {
      return shiftHue(v, Prm[base + 9u]);
    }
  }
  return v;
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
  let jitter = Prm[base + 5u] != 0.0;
  let npix = p.outH * p.outW;
  let scaleY = f32(ch) / f32(p.outH);
  let scaleX = f32(cw) / f32(p.outW);
  let plane = p.srcH * p.srcW;
  let imgBase = n * CHANNELS * plane;

  // The jitter ops before contrast run in phase 1, contrast and the rest in phase 2.
  var ops = vec4<u32>(4u);
  var cpos = 4u;
  if (jitter) {
    for (var s = 0u; s < 4u; s++) {
      ops[s] = u32(Prm[base + 11u + s]);
      if (ops[s] == 1u) {
        cpos = s;
      }
    }
  }

  // Phase 1: crop + bilinear resize (+ flip), the ops before contrast, the grey sum.
  var px: array<vec3<f32>, PER>;
  var sum = 0.0;
  for (var k = 0u; k < PER; k++) {
    let pix = lid + k * WG;
    var v = vec3<f32>(0.0);
    if (pix < npix) {
      let oy = pix / p.outW;
      var ox = pix % p.outW;
      if (flip) {
        ox = p.outW - 1u - ox;
      }
      let sy = max((f32(oy) + 0.5) * scaleY - 0.5, 0.0);
      let sx = max((f32(ox) + 0.5) * scaleX - 0.5, 0.0);
      let y0 = min(u32(floor(sy)), ch - 1u);
      let x0 = min(u32(floor(sx)), cw - 1u);
      let y1 = min(y0 + 1u, ch - 1u);
      let x1 = min(x0 + 1u, cw - 1u);
      let ly = sy - f32(y0);
      let lx = sx - f32(x0);
      let r0 = (top + y0) * p.srcW + left;
      let r1 = (top + y1) * p.srcW + left;
      for (var c = 0u; c < CHANNELS; c++) {
        let cb = imgBase + c * plane;
        let a = (1.0 - lx) * srcByte(cb + r0 + x0) + lx * srcByte(cb + r0 + x1);
        let b = (1.0 - lx) * srcByte(cb + r1 + x0) + lx * srcByte(cb + r1 + x1);
        v[c] = ((1.0 - ly) * a + ly * b) / 255.0;
      }
      for (var s = 0u; s < cpos; s++) {
        v = pixelOp(ops[s], v, base);
      }
      sum += gray(v);
    }
    px[k] = v;
  }

  // The image's mean grey value (used only when contrast is on; the barriers stay in uniform
  // control flow at the top level, which keeps the kernel quick to compile on llvmpipe).
  red[lid] = sum;
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    for (var i = 0u; i < WG; i++) {
      total += red[i];
    }
    red[0] = total;
  }
  workgroupBarrier();
  let m = red[0] / f32(npix);
  let fc = Prm[base + 7u];

  // Phase 2: contrast, the remaining jitter ops, grayscale, normalize.
  let grey = CHANNELS == 3u && Prm[base + 10u] != 0.0;
  let outBase = n * CHANNELS * npix;
  for (var k = 0u; k < PER; k++) {
    let pix = lid + k * WG;
    if (pix < npix) {
      var v = px[k];
      if (cpos < 4u) {
        v = clamp01(fc * v + (1.0 - fc) * m);
        for (var s = cpos + 1u; s < 4u; s++) {
          v = pixelOp(ops[s], v, base);
        }
      }
      if (grey) {
        v = vec3<f32>(gray(v));
      }
      for (var c = 0u; c < CHANNELS; c++) {
        Out[outBase + c * npix + pix] = (v[c] - p.mean[c]) / p.stdev[c];
      }
    }
  }
}
