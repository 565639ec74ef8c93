// Fake quantization (quantize, then dequantize, in f32) and the range observers that feed it,
// exactly as docs/method.md#quantizer-arithmetic. The bit-width is a uniform: changing it compiles nothing.
//
// Weights: symmetric, per output channel (axis 0; channel c is the contiguous run
//   [c*L, (c+1)*L)), s_c = m_c / ((2^b - 1) / 2), q = clamp(round(w / s_c), -2^(b-1), 2^(b-1) - 1).
// Activations: asymmetric, per tensor, s = (max - min) / (2^b - 1), zp = -round(min / s),
//   q = clamp(round(x / s) + zp, 0, 2^b - 1), x_hat = (q - zp) * s.
// round() is WGSL's, which rounds halves to even (as torch.round). Backward is straight-through:
// the gradient passes where round(x / s) + zp fell inside the clamp range, inclusive (the
// gradient of torch.clamp), and is zero outside. Bit-width 0 or a zero scale anywhere in the
// tensor means pass-through (the reference's `torch.min(scale) == 0`); an activation range
// that was never observed (min > max) passes through too.
//
// The arithmetic (fqSym, fqAsym, actParams, the order-preserving keys of the activation range
// state) is in shaders/fake-quant.wgsl, appended to this module by its declaration.
// Weight ranges are f32[C] max|w|; non-negative floats order like their bit patterns, so
// observers update them with atomicMax on the bits.
//
// Entry points and their bindings (inputs, then outputs):
//   observeAbsMax        W, R(atomic)           per-channel max|w| into R, accumulating
//   observeMinMax        X, S(atomic)           per-tensor min/max into S, accumulating: each
//                                               invocation folds OBS_UNITS vec4s, then an
//                                               atomicMax per bound where it raises it
//   rangeFlag            R, Flag                one invocation: Flag[0] = 1 when the tensor
//                                               passes through (bits 0 or any zero range)
//   weightQuant          W, R, Flag, Y          Y = fake-quant(W), per segment (below)
//   weightBackward       W, R, Flag, G, GW      straight-through
//   weightBackwardScale  W, R, Flag, G, GW, P, A  the same, and each segment's part of the
//                                               gradient through the scale
//   weightScaleFinal     W, Flag, P, A, GW      per channel: adds that gradient at max|w_c|
//   actQuant             X, S, Y                per element, PER vec4s per invocation
//   actBackward          X, G, S, GX            per element, PER vec4s per invocation

// The interface generated from the declaration in engine/ops/quant.ts (struct Params: n elements,
// C channels and L elements per channel (weights), bits; each entry point's bindings) goes here:
#interface

const WG: u32 = 64u;
const WG_ELEM: u32 = 256u;
const PER: u32 = 8u;
const OBS_UNITS: u32 = 32u;

// ---- shared helpers --------------------------------------------------------------------------

// (2^b - 1) / 2: the symmetric scale's denominator (7.5 for b = 4), exact in f32.
fn symDenominator(bits: u32) -> f32 {
  return f32((1u << bits) - 1u) * 0.5;
}

// ---- weights: one invocation per segment --------------------------------------------------
//
// A channel's L elements are cut into segments of SEG consecutive elements (the last one
// shorter), and every weight kernel gives one invocation a segment: no workgroup barriers (each
// costs a great deal on llvmpipe, where the per-channel workgroup trees these kernels had were
// most of their time), a contiguous run of vec4s per invocation (the streaming layout), and an
// invocation never straddles two channels, so it reads its channel's range once. The vec4 units
// covering a segment are read whole; where L % 4 != 0 a segment's first or last unit is shared
// with a neighbour's, so lanes outside the segment are masked out of sums and written one
// component at a time (only those units: the rest are stored as vec4s).

const SEG: u32 = 32u;  // a multiple of 4

struct Segment {
  id: u32,     // the segment's index in [C][segs] order (partials are stored at it)
  c: u32,      // its channel
  begin: u32,  // its elements: [begin, end) of the whole tensor
  end: u32,
  valid: bool,
}

fn segmentsPerChannel() -> u32 {
  return (p.L + SEG - 1u) / SEG;
}

fn segmentOf(gid: vec3<u32>, nwg: vec3<u32>) -> Segment {
  let segs = segmentsPerChannel();
  let id = gid.x + gid.y * nwg.x * WG;
  let c = id / segs;
  let begin = c * p.L + (id - c * segs) * SEG;
  return Segment(id, c, begin, min(begin + SEG, (c + 1u) * p.L), c < p.C);
}

// Which lanes of vec4 unit u hold elements of the segment.
fn lanesIn(sg: Segment, u: u32) -> vec4<bool> {
  let e = vec4<u32>(4u * u) + vec4<u32>(0u, 1u, 2u, 3u);
  return (e >= vec4<u32>(sg.begin)) & (e < vec4<u32>(sg.end));
}

fn wholeUnit(sg: Segment, u: u32) -> bool {
  return 4u * u >= sg.begin && 4u * u + 4u <= sg.end;
}

fn fqSym4(x: vec4<f32>, s: f32, bits: u32) -> vec4<f32> {
  return vec4<f32>(fqSym(x.x, s, bits).v, fqSym(x.y, s, bits).v, fqSym(x.z, s, bits).v, fqSym(x.w, s, bits).v);
}

// Per-channel max|w| folded into R with atomicMax (accumulating; R starts at zero).
@compute @workgroup_size(64)
fn observeAbsMax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let sg = segmentOf(gid, nwg);
  if (!sg.valid) { return; }
  var m = vec4<f32>(0.0);
  for (var u = sg.begin / 4u; 4u * u < sg.end; u++) {
    m = max(m, select(vec4<f32>(0.0), abs(W[u]), lanesIn(sg, u)));
  }
  atomicMax(&oaR[sg.c], bitcast<u32>(max(max(m.x, m.y), max(m.z, m.w))));
}

// Raises an activation range bound to key k; the read-modify-write is skipped where the stored
// bound is already as large (most invocations, once the first have run).
fn raiseBound(slot: u32, k: u32) {
  if (k > atomicLoad(&omS[slot])) { atomicMax(&omS[slot], k); }
}

// Each invocation folds its OBS_UNITS vec4s and raises the bounds itself: no workgroup tree (a
// workgroupBarrier costs more than the whole pass on SwiftShader, and much on llvmpipe).
@compute @workgroup_size(64)
fn observeMinMax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = p.n;
  let n4 = (n + 3u) / 4u;
  let first = (gid.x + gid.y * nwg.x * WG) * OBS_UNITS;
  if (first >= n4) { return; }
  var mn = vec4<f32>(posInf());
  var mx = vec4<f32>(negInf());
  for (var i = first; i < min(first + OBS_UNITS, n4); i++) {
    var v = omX[i];
    if (4u * i + 4u > n) {
      // Lanes past the tensor repeat a live one.
      for (var k = n - 4u * i; k < 4u; k++) { v[k] = v[0]; }
    }
    mn = min(mn, v);
    mx = max(mx, v);
  }
  raiseBound(0u, key(-min(min(mn.x, mn.y), min(mn.z, mn.w))));
  raiseBound(1u, key(max(max(mx.x, mx.y), max(mx.z, mx.w))));
}

// Whether the whole tensor passes through: bit-width 0, or a zero scale in any channel. One
// invocation reads every channel's range (a few hundred at most): a workgroup tree's barriers
// would cost far more. Runs before the kernels that read Flag.
@compute @workgroup_size(1)
fn rangeFlag() {
  var m = posInf();
  for (var c = 0u; c < p.C; c++) { m = min(m, rfR[c]); }
  FlagOut[0] = select(0u, 1u, p.bits == 0u || m == 0.0);
}

@compute @workgroup_size(64)
fn weightQuant(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let sg = segmentOf(gid, nwg);
  if (!sg.valid) { return; }
  let bits = p.bits;
  let s = R[sg.c] / symDenominator(bits);
  let through = Flag[0] != 0u;
  for (var u = sg.begin / 4u; 4u * u < sg.end; u++) {
    let x = W[u];
    let y = select(fqSym4(x, s, bits), x, through);
    if (wholeUnit(sg, u)) {
      wqY[u] = y;
    } else {
      let inSeg = lanesIn(sg, u);
      for (var k = 0u; k < 4u; k++) { if (inSeg[k]) { wqY[u][k] = y[k]; } }
    }
  }
}

// Straight-through: gw = g where round(w / s) was inside the clamp range, else 0.
fn steGrad4(x: vec4<f32>, g: vec4<f32>, s: f32, bits: u32, through: bool) -> vec4<f32> {
  let inside = vec4<bool>(fqSym(x.x, s, bits).inside, fqSym(x.y, s, bits).inside,
                          fqSym(x.z, s, bits).inside, fqSym(x.w, s, bits).inside);
  return select(select(vec4<f32>(0.0), g, inside), g, through);
}

@compute @workgroup_size(64)
fn weightBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let sg = segmentOf(gid, nwg);
  if (!sg.valid) { return; }
  let bits = p.bits;
  let through = Flag[0] != 0u;
  let s = R[sg.c] / symDenominator(bits);
  for (var u = sg.begin / 4u; 4u * u < sg.end; u++) {
    let gw = steGrad4(W[u], wbG[u], s, bits, through);
    if (wholeUnit(sg, u)) {
      wbGW[u] = gw;
    } else {
      let inSeg = lanesIn(sg, u);
      for (var k = 0u; k < 4u; k++) { if (inSeg[k]) { wbGW[u][k] = gw[k]; } }
    }
  }
}

// The reference code's gradient through the scale (s = max|w_c| / D stays attached to the graph
// there): dL/ds_c = sum_i g_i * (q_i - inside_i * w_i / s_c), which reaches the element holding
// max|w_c| (the first one, on ties) as sign(w) * dL/ds_c / D. This kernel writes the
// straight-through gradient as weightBackward does and, per segment, its part of the sum (wsP)
// and the first index in it holding max|w_c| (wsA; none: 0xffffffff); weightScaleFinal adds the
// term, one invocation per channel.
@compute @workgroup_size(64)
fn weightBackwardScale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let sg = segmentOf(gid, nwg);
  if (!sg.valid) { return; }
  let bits = p.bits;
  let through = Flag[0] != 0u;
  let m = R[sg.c];
  let s = m / symDenominator(bits);
  var acc = 0.0;
  var first = 0xffffffffu;
  for (var u = sg.begin / 4u; 4u * u < sg.end; u++) {
    let x = W[u];
    let g = wsG[u];
    let inSeg = lanesIn(sg, u);
    for (var k = 0u; k < 4u; k++) {
      let f = fqSym(x[k], s, bits);
      if (inSeg[k]) {
        acc += g[k] * (f.q - select(0.0, x[k] / s, f.inside));
        if (abs(x[k]) == m) { first = min(first, 4u * u + k); }
      }
    }
    let gw = steGrad4(x, g, s, bits, through);
    if (wholeUnit(sg, u)) {
      wsGW[u] = gw;
    } else {
      for (var k = 0u; k < 4u; k++) { if (inSeg[k]) { wsGW[u][k] = gw[k]; } }
    }
  }
  wsP[sg.id] = acc;
  wsA[sg.id] = first;
}

@compute @workgroup_size(64)
fn weightScaleFinal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= p.C || sfFlag[0] != 0u) { return; }
  let segs = segmentsPerChannel();
  var total = 0.0;
  var at = 0xffffffffu;
  for (var k = c * segs; k < (c + 1u) * segs; k++) {
    total += sfP[k];
    at = min(at, sfA[k]);
  }
  if (at != 0xffffffffu) { sfGW[at] += sign(W[at / 4u][at % 4u]) * total / symDenominator(p.bits); }
}

// ---- activations ----------------------------------------------------------------------------

// PER vec4s per invocation. The last vec4 may run into the buffer's padding (pool buffers are
// whole multiples of 64 bytes, and Y and GX are fresh tensors of their own); those lanes are
// computed and ignored.
@compute @workgroup_size(256)
fn actQuant(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let first = (gid.x + gid.y * nwg.x * WG_ELEM) * PER;
  let n4 = (p.n + 3u) / 4u;
  let a = actParams(aqS[0], aqS[1], p.bits);
  for (var i = first; i < min(first + PER, n4); i++) {
    let x = aqX[i];
    aqY[i] = select(fqAsym4(x, a, p.bits), x, a.through);
  }
}

@compute @workgroup_size(256)
fn actBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let first = (gid.x + gid.y * nwg.x * WG_ELEM) * PER;
  let n4 = (p.n + 3u) / 4u;
  let a = actParams(abS[0], abS[1], p.bits);
  for (var i = first; i < min(first + PER, n4); i++) {
    let g = abG[i];
    if (a.through) {
      abGX[i] = g;
    } else {
      abGX[i] = select(vec4<f32>(0.0), g, insideAsym4(abX[i], a, p.bits));
    }
  }
}
