// Fill a buffer with one 32-bit pattern (zeros, ones, NaN poison, any f32/i32 constant).
// Declared in engine/launch.ts: params size, bits; output Out (u32).

// The interface generated from that declaration (struct Params, bindings) goes here:
#interface

// A 2-D grid lifts the 65535-workgroup limit: the linear index spans both grid dimensions.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.size) {
    Out[i] = p.bits;
  }
}
