// The sum of 2 to 4 tensors of one shape, in order: out = ((A + B) + C) + D, the same rounding
// as adding them one at a time. Declared in engine/ops/elementwise.ts (addN); autograd sums a
// tensor's gradient contributions with it, one dispatch instead of one per extra contribution.
// Params: size (elements), count (how many of A..D are live; the dead ones are bound to A and
// not read). Vec4 loads and stores, PER vec4s per invocation
// (docs/environment.md#speed-on-lavapipe); a partial last vec4 is written lane by lane, so
// nothing past `size` elements changes.

// The interface generated from that declaration (struct Params, bindings) goes here:
#interface

const WG: u32 = 256u;
const PER: u32 = 4u;

fn total(j: u32) -> vec4<f32> {
  var s = A[j] + B[j];
  if (p.count > 2u) { s += C[j]; }
  if (p.count > 3u) { s += D[j]; }
  return s;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let first = (gid.x + gid.y * nwg.x * WG) * PER;
  let whole = p.size / 4u;
  for (var j = first; j < min(first + PER, whole); j++) { Out[j] = total(j); }
  if (first <= whole && whole < first + PER && 4u * whole < p.size) {
    let s = total(whole);
    for (var e = 4u * whole; e < p.size; e++) { Out[whole][e % 4u] = s[e % 4u]; }
  }
}
