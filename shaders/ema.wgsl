// Exponential moving average in place (BYOL's target encoder):
//   T = m * T + (1 - m) * S
// with the decay m and (1 - m) as uniforms (a new momentum compiles nothing). (1 - m) is
// computed on the host in double and rounded to f32 once, as PyTorch does for
// `t * m + s * (1. - m)` with Python floats. One vec4 per invocation; the last vec4 may reach
// into the buffer's padding (pool buffers are whole multiples of 64 bytes), whose values are
// never read as tensor elements.
//
// Bindings: S (source, read), T (target, read_write), params.

struct Params {
  n: u32,
  _pad0: u32,
  m: f32,
  oneMinusM: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> S: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> T: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> pp: Params;

@compute @workgroup_size(256)
fn ema(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (4u * i >= pp.n) { return; }
  T[i] = T[i] * pp.m + S[i] * pp.oneMinusM;
}
