// Fill a buffer with one 32-bit pattern (zeros, ones, NaN poison, any f32/i32 constant).
struct Params {
  size: u32,
  bits: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

// A 2-D grid lifts the 65535-workgroup limit: the linear index spans both grid dimensions.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.size) {
    out[i] = p.bits;
  }
}
