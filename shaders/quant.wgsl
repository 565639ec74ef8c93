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
//   observeAbsMax   W, R(atomic)             per-channel max|w| into R, accumulating
//   observeMinMax   X, S(atomic)             per-tensor min/max into S, accumulating: each
//                                            invocation folds OBS_UNITS vec4s, a workgroup tree,
//                                            then one atomicMax per bound and workgroup
//   weightFused     W, Y, R                  per channel: R = max|w|, Y = fake-quant(W)
//   weightQuant     W, R, Y                  per channel: Y = fake-quant(W) with given R
//   weightFixup     W, R, Y                  one workgroup: the tensor-wide pass-through rule
//                                            after weightFused or weightQuant (copies W to Y when
//                                            bits = 0 or any channel's range is 0; reads only R
//                                            otherwise)
//   rangeFlag       R, Flag                  one workgroup: Flag[0] = 1 when the tensor passes
//                                            through, read by weightBackward
//   weightBackward  W, R, G, Flag, GW        straight-through, optional gradient through the scale
//   actQuant        X, S, Y                  per element, PER vec4s per invocation
//   actBackward     X, G, S, GX              per element, PER vec4s per invocation

// The interface generated from the declaration in engine/ops/quant.ts (struct Params: n elements,
// C channels and L elements per channel (weights), bits, scaleGrad (weightBackward: 1 adds the
// reference's gradient through the scale); each entry point's bindings) goes here:
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

var<workgroup> redF: array<f32, 256>;
var<workgroup> redF2: array<f32, 256>;
var<workgroup> redU: array<u32, 64>;

// Tree reductions over a workgroup of WG invocations (called in uniform control flow).
fn wgMax(lid: u32, v: f32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (lid < half) { redF[lid] = max(redF[lid], redF[lid + half]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redF[0]);
  return r;
}

fn wgMin(lid: u32, v: f32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (lid < half) { redF[lid] = min(redF[lid], redF[lid + half]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redF[0]);
  return r;
}

fn wgSum(lid: u32, v: f32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (lid < half) { redF[lid] = redF[lid] + redF[lid + half]; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redF[0]);
  return r;
}

fn wgMinU(lid: u32, v: u32) -> u32 {
  redU[lid] = v;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (lid < half) { redU[lid] = min(redU[lid], redU[lid + half]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redU[0]);
  return r;
}

fn channelOf(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// ---- observers -------------------------------------------------------------------------------

// One workgroup per output channel.
@compute @workgroup_size(64)
fn observeAbsMax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = channelOf(wid, nwg);
  if (c >= p.C) { return; }
  let base = c * p.L;
  var m = 0.0;
  for (var i = lid.x; i < p.L; i += WG) { m = max(m, abs(W[base + i])); }
  m = wgMax(lid.x, m);
  if (lid.x == 0u) { atomicMax(&oaR[c], bitcast<u32>(m)); }
}

@compute @workgroup_size(64)
fn observeMinMax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = p.n;
  let n4 = (n + 3u) / 4u;
  let first = (gid.x + gid.y * nwg.x * WG) * OBS_UNITS;
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
  redF[lid.x] = min(min(mn.x, mn.y), min(mn.z, mn.w));
  redF2[lid.x] = max(max(mx.x, mx.y), max(mx.z, mx.w));
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (lid.x < half) {
      redF[lid.x] = min(redF[lid.x], redF[lid.x + half]);
      redF2[lid.x] = max(redF2[lid.x], redF2[lid.x + half]);
    }
    workgroupBarrier();
  }
  if (lid.x == 0u && first < n4) {
    atomicMax(&omS[0], key(-redF[0]));
    atomicMax(&omS[1], key(redF2[0]));
  }
}

// ---- weights ---------------------------------------------------------------------------------

// The fused step: one workgroup per output channel reduces max|w| and quantizes the channel
// (its second read comes from cache). A zero channel passes through by itself here; the
// tensor-wide rule (any zero scale: the whole tensor passes through) is weightFixup's.
@compute @workgroup_size(64)
fn weightFused(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = channelOf(wid, nwg);
  if (c >= p.C) { return; }
  let base = c * p.L;
  var m = 0.0;
  for (var i = lid.x; i < p.L; i += WG) { m = max(m, abs(W[base + i])); }
  m = wgMax(lid.x, m);
  if (lid.x == 0u) { wfR[c] = m; }
  let bits = p.bits;
  let s = m / symDenominator(bits);
  let through = bits == 0u || s == 0.0;
  for (var i = lid.x; i < p.L; i += WG) {
    let x = W[base + i];
    wfY[base + i] = select(fqSym(x, s, bits).v, x, through);
  }
}

@compute @workgroup_size(64)
fn weightQuant(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = channelOf(wid, nwg);
  if (c >= p.C) { return; }
  let bits = p.bits;
  let s = R[c] / symDenominator(bits);
  let through = bits == 0u || s == 0.0;
  let base = c * p.L;
  for (var i = lid.x; i < p.L; i += WG) {
    let x = W[base + i];
    wqY[base + i] = select(fqSym(x, s, bits).v, x, through);
  }
}

// Whether the whole tensor passes through: bit-width 0, or a zero scale in any channel.
fn passesThrough(lid: u32) -> bool {
  var m = posInf();
  for (var c = lid; c < p.C; c += WG) { m = min(m, R[c]); }
  return p.bits == 0u || wgMin(lid, m) == 0.0;
}

@compute @workgroup_size(64)
fn weightFixup(@builtin(local_invocation_id) lid: vec3<u32>) {
  if (passesThrough(lid.x)) {
    for (var i = lid.x; i < p.n; i += WG) { wqY[i] = W[i]; }
  }
}

@compute @workgroup_size(64)
fn rangeFlag(@builtin(local_invocation_id) lid: vec3<u32>) {
  let through = passesThrough(lid.x);
  if (lid.x == 0u) { FlagOut[0] = select(0u, 1u, through); }
}

// Straight-through: gw = g where round(w / s) was inside the clamp range, else 0.
// With scaleGrad (the reference code, where s = max|w_c| / D stays attached to the graph):
//   dL/ds_c = sum_i g_i * (q_i - inside_i * w_i / s_c), and it reaches the element holding
//   max|w_c| (the first one, on ties) as sign(w) * dL/ds_c / D.
@compute @workgroup_size(64)
fn weightBackward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = channelOf(wid, nwg);
  if (c >= p.C) { return; }
  let bits = p.bits;
  let through = Flag[0] != 0u;
  let base = c * p.L;
  let m = R[c];
  let D = symDenominator(bits);
  let s = m / D;
  var extra = 0.0;
  var at = 0xffffffffu;
  if (p.scaleGrad == 1u && !through) {
    var acc = 0.0;
    var first = 0xffffffffu;
    for (var i = lid.x; i < p.L; i += WG) {
      let x = W[base + i];
      let f = fqSym(x, s, bits);
      acc += wbG[base + i] * (f.q - select(0.0, x / s, f.inside));
      if (abs(x) == m) { first = min(first, i); }
    }
    extra = wgSum(lid.x, acc) / D;
    at = wgMinU(lid.x, first);
  }
  for (var i = lid.x; i < p.L; i += WG) {
    let x = W[base + i];
    let g = wbG[base + i];
    var gw = select(select(0.0, g, fqSym(x, s, bits).inside), g, through);
    if (i == at) { gw += sign(x) * extra; }
    wbGW[base + i] = gw;
  }
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
