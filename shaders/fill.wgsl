// Fill a buffer with one 32-bit pattern (zeros, ones, NaN poison, any f32/i32 constant).
// Declared in engine/launch.ts: params size (elements), bits; output Out, written as vec4s,
// PER of them per invocation (docs/environment.md#speed-on-lavapipe). A partial last vec4 is
// written lane by lane, so nothing past `size` elements changes.

// The interface generated from that declaration (struct Params, bindings) goes here:
#interface

const WG: u32 = 256u;
const PER: u32 = 4u;

// A 2-D grid lifts the 65535-workgroup limit: the linear index spans both grid dimensions.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let first = (gid.x + gid.y * nwg.x * WG) * PER;
  let whole = p.size / 4u;
  let v = vec4<u32>(p.bits);
  for (var j = first; j < min(first + PER, whole); j++) { Out[j] = v; }
  if (first <= whole && whole < first + PER) {
    for (var e = 4u * whole; e < p.size; e++) { Out[whole][e % 4u] = p.bits; }
  }
}
