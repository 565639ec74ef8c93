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
// Activation ranges live in a u32[2] state updated with atomicMax on order-preserving keys:
// state[0] = key(-min), state[1] = key(max), so one fill value (key(-inf)) resets both.
// Weight ranges are f32[C] max|w|; non-negative floats order like their bit patterns, so
// observers update them with atomicMax on the bits.
//
// Entry points and their bindings (inputs, then outputs):
//   observeAbsMax   W, R(atomic)             per-channel max|w| into R, accumulating
//   observeMinMax   X, S(atomic)             per-tensor min/max into S, accumulating
//   weightFused     W, Y, R                  per channel: R = max|w|, Y = fake-quant(W)
//   weightQuant     W, R, Y                  Y = fake-quant(W) with given R (mode 0), or only the
//                                            tensor-wide pass-through fix-up after weightFused (mode 1)
//   weightBackward  W, R, G, GW              straight-through, optional gradient through the scale
//   actQuant        X, S, Y                  per element (vec4)
//   actBackward     X, G, S, GX              per element (vec4)

// The interface generated from the declaration in engine/ops/quant.ts (struct Params: n elements,
// C channels and L elements per channel (weights), bits, mode (weightQuant: 0 quantize, 1 the
// pass-through fix-up only), scaleGrad (weightBackward: 1 adds the reference's gradient through
// the scale); each entry point's bindings) goes here:
#interface

const WG: u32 = 64u;
const WG_ELEM: u32 = 256u;

// ---- shared helpers --------------------------------------------------------------------------

fn posInf() -> f32 { let b = 0x7f800000u; return bitcast<f32>(b); }
fn negInf() -> f32 { let b = 0xff800000u; return bitcast<f32>(b); }

// Order-preserving map from f32 to u32 (larger float, larger key).
fn key(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(~b, b | 0x80000000u, (b & 0x80000000u) == 0u);
}
fn unkey(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

struct Fq {
  v: f32,        // the dequantized value
  q: f32,        // the clamped integer level (minus the zero point: q - zp)
  inside: bool,  // round(x / s) + zp fell inside the clamp range
}

// Symmetric: levels [-2^(b-1), 2^(b-1) - 1], zero point 0.
fn fqSym(x: f32, s: f32, bits: u32) -> Fq {
  let lo = -f32(1u << (bits - 1u));
  let hi = f32((1u << (bits - 1u)) - 1u);
  let r = round(x / s);
  let q = clamp(r, lo, hi);
  return Fq(q * s, q, r >= lo && r <= hi);
}

// Asymmetric: levels [0, 2^b - 1] with zero point zp.
fn fqAsym(x: f32, s: f32, zp: f32, bits: u32) -> Fq {
  let hi = f32((1u << bits) - 1u);
  let r = round(x / s) + zp;
  let q = clamp(r, 0.0, hi);
  return Fq((q - zp) * s, q - zp, r >= 0.0 && r <= hi);
}

// (2^b - 1) / 2: the symmetric scale's denominator (7.5 for b = 4), exact in f32.
fn symDenominator(bits: u32) -> f32 {
  return f32((1u << bits) - 1u) * 0.5;
}

struct ActParams {
  s: f32,
  zp: f32,
  through: bool,
}

fn actParams(k0: u32, k1: u32, bits: u32) -> ActParams {
  let mn = -unkey(k0);
  let mx = unkey(k1);
  let s = (mx - mn) / f32((1u << bits) - 1u);
  let zp = -round(mn / s);
  // !(s > 0): zero scale, or a range never observed (min = +inf, max = -inf gives s = -inf).
  return ActParams(s, zp, bits == 0u || !(s > 0.0));
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

// A grid-stride loop over vec4s, a tree per workgroup, then one atomic per workgroup and bound.
@compute @workgroup_size(256)
fn observeMinMax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = p.n;
  let n4 = (n + 3u) / 4u;
  var mn = posInf();
  var mx = negInf();
  for (var i = gid.x; i < n4; i += nwg.x * WG_ELEM) {
    let v = omX[i];
    if (4u * i + 4u <= n) {
      mn = min(mn, min(min(v.x, v.y), min(v.z, v.w)));
      mx = max(mx, max(max(v.x, v.y), max(v.z, v.w)));
    } else {
      for (var k = 0u; k < 4u; k++) {
        if (4u * i + k < n) { mn = min(mn, v[k]); mx = max(mx, v[k]); }
      }
    }
  }
  redF[lid.x] = mn;
  redF2[lid.x] = mx;
  workgroupBarrier();
  for (var half = WG_ELEM / 2u; half > 0u; half = half / 2u) {
    if (lid.x < half) {
      redF[lid.x] = min(redF[lid.x], redF[lid.x + half]);
      redF2[lid.x] = max(redF2[lid.x], redF2[lid.x + half]);
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    atomicMax(&omS[0], key(-redF[0]));
    atomicMax(&omS[1], key(redF2[0]));
  }
}

// ---- weights ---------------------------------------------------------------------------------

// The fused step: one workgroup per output channel reduces max|w| and quantizes the channel
// (its second read comes from cache). A zero channel passes through by itself here; the
// tensor-wide rule (any zero scale: the whole tensor passes through) is applied by weightQuant
// in mode 1, which reads only R in the common case.
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

// The smallest scale over all channels (the input R of weightQuant and weightBackward),
// computed by every workgroup (C reads: cheap).
fn minScale(lid: u32, C: u32, bits: u32) -> f32 {
  var m = posInf();
  for (var c = lid; c < C; c += WG) { m = min(m, R[c] / symDenominator(bits)); }
  return wgMin(lid, m);
}

@compute @workgroup_size(64)
fn weightQuant(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = channelOf(wid, nwg);
  if (c >= p.C) { return; }
  let bits = p.bits;
  let through = bits == 0u || minScale(lid.x, p.C, bits) == 0.0;
  let base = c * p.L;
  if (p.mode == 1u) {
    // Fix-up after weightFused: copy the channel only when the whole tensor passes through.
    if (through) {
      for (var i = lid.x; i < p.L; i += WG) { wqY[base + i] = W[base + i]; }
    }
    return;
  }
  let s = R[c] / symDenominator(bits);
  for (var i = lid.x; i < p.L; i += WG) {
    let x = W[base + i];
    wqY[base + i] = select(fqSym(x, s, bits).v, x, through);
  }
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
  let through = bits == 0u || minScale(lid.x, p.C, bits) == 0.0;
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

// ---- activations -----------------------------------------------------------------------------

// One vec4 per invocation. The last vec4 may run into the buffer's padding (pool buffers are
// whole multiples of 64 bytes); those lanes are computed and ignored.
@compute @workgroup_size(256)
fn actQuant(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_ELEM;
  if (4u * i >= p.n) { return; }
  let a = actParams(aqS[0], aqS[1], p.bits);
  let x = aqX[i];
  if (a.through) { aqY[i] = x; return; }
  aqY[i] = vec4<f32>(
    fqAsym(x.x, a.s, a.zp, p.bits).v, fqAsym(x.y, a.s, a.zp, p.bits).v,
    fqAsym(x.z, a.s, a.zp, p.bits).v, fqAsym(x.w, a.s, a.zp, p.bits).v);
}

@compute @workgroup_size(256)
fn actBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_ELEM;
  if (4u * i >= p.n) { return; }
  let a = actParams(abS[0], abS[1], p.bits);
  let g = abG[i];
  if (a.through) { abGX[i] = g; return; }
  let x = abX[i];
  let inside = vec4<bool>(
    fqAsym(x.x, a.s, a.zp, p.bits).inside, fqAsym(x.y, a.s, a.zp, p.bits).inside,
    fqAsym(x.z, a.s, a.zp, p.bits).inside, fqAsym(x.w, a.s, a.zp, p.bits).inside);
  abGX[i] = select(vec4<f32>(0.0), g, inside);
}
