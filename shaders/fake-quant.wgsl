// Fake-quantization arithmetic shared by shaders/quant.wgsl and shaders/batchnorm.wgsl (appended
// to both by their declarations; no bindings here), exactly as docs/method.md#quantizer-arithmetic:
// quantize, then dequantize, in f32, round() halves to even (as torch.round).
//
// Activation ranges live in a u32[2] state updated with atomicMax on order-preserving keys:
// state[0] = key(-min), state[1] = key(max), so one fill value (key(-inf)) resets both.

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

// Per-tensor activation quantization from an observer's state: scale, zero point, and whether
// the tensor passes through unchanged.
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

// The four lanes of a vec4 fake-quantized (a.through is the caller's to check).
fn fqAsym4(x: vec4<f32>, a: ActParams, bits: u32) -> vec4<f32> {
  return vec4<f32>(fqAsym(x.x, a.s, a.zp, bits).v, fqAsym(x.y, a.s, a.zp, bits).v,
                   fqAsym(x.z, a.s, a.zp, bits).v, fqAsym(x.w, a.s, a.zp, bits).v);
}

// Where the straight-through gradient passes (round(x / s) + zp inside the clamp range).
fn insideAsym4(x: vec4<f32>, a: ActParams, bits: u32) -> vec4<bool> {
  return vec4<bool>(fqAsym(x.x, a.s, a.zp, bits).inside, fqAsym(x.y, a.s, a.zp, bits).inside,
                    fqAsym(x.z, a.s, a.zp, bits).inside, fqAsym(x.w, a.s, a.zp, bits).inside);
}
