// Exponential moving average in place (BYOL's target encoder, MoCo's key encoder):
//   T = m * T + (1 - m) * S
// with the decay m and (1 - m) as uniforms (a new momentum compiles nothing). (1 - m) is
// computed on the host in double and rounded to f32 once, as PyTorch does for
// `t * m + s * (1. - m)` with Python floats. PER vec4s per invocation; the last vec4 may reach
// into the buffer's padding (pool buffers are whole multiples of 64 bytes), whose values are
// never read as tensor elements.
//
// Up to 4 tensors per dispatch ("slots", engine/ops/slots.ts): slot k owns workgroups
// [starts[k], starts[k + 1]) and its first counts[k] vec4s. Entry points: ema (S -> T, one
// tensor: the remainder of a grouping, and the reference path), ema4 (S0..S3 -> T0..T3).

// The interface generated from the declaration in engine/ops/ema.ts (struct Params: counts,
// starts, m, oneMinusM; bindings) goes here:
#interface

const WG: u32 = 256u;
const PER: u32 = 8u;

fn update(t: vec4<f32>, s: vec4<f32>) -> vec4<f32> {
  return t * p.m + s * p.oneMinusM;
}

struct Run {
  slot: u32,
  begin: u32,
  end: u32,
}

fn runOf(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> Run {
  let g = wid.x + wid.y * nwg.x;
  let slot = u32(g >= p.starts.y) + u32(g >= p.starts.z) + u32(g >= p.starts.w);
  let begin = ((g - p.starts[slot]) * WG + lid.x) * PER;
  return Run(slot, begin, min(begin + PER, p.counts[slot]));
}

@compute @workgroup_size(WG)
fn ema(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = runOf(lid, wid, nwg);
  for (var i = r.begin; i < r.end; i++) { T[i] = update(T[i], S[i]); }
}

@compute @workgroup_size(WG)
fn ema4(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = runOf(lid, wid, nwg);
  switch (r.slot) {
    case 0u: { for (var i = r.begin; i < r.end; i++) { T0[i] = update(T0[i], S0[i]); } }
    case 1u: { for (var i = r.begin; i < r.end; i++) { T1[i] = update(T1[i], S1[i]); } }
    case 2u: { for (var i = r.begin; i < r.end; i++) { T2[i] = update(T2[i], S2[i]); } }
    default: { for (var i = r.begin; i < r.end; i++) { T3[i] = update(T3[i], S3[i]); } }
  }
}
