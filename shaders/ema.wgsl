// Exponential moving average in place (BYOL's target encoder):
//   T = m * T + (1 - m) * S
// with the decay m and (1 - m) as uniforms (a new momentum compiles nothing). (1 - m) is
// computed on the host in double and rounded to f32 once, as PyTorch does for
// `t * m + s * (1. - m)` with Python floats. One vec4 per invocation; the last vec4 may reach
// into the buffer's padding (pool buffers are whole multiples of 64 bytes), whose values are
// never read as tensor elements.
//
// Bindings: S (source) -> T (target, updated in place).

// The interface generated from the declaration in engine/ops/ema.ts (struct Params: n, m,
// oneMinusM; bindings) goes here:
#interface

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn ema(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (4u * i >= p.n) { return; }
  T[i] = T[i] * p.m + S[i] * p.oneMinusM;
}
