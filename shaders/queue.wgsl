// MoCo's queue of negatives, a ring buffer of D-dimensional keys stored as the columns of
// Q [D, K] (PyTorch's layout: `queue[:, ptr:ptr + N] = keys.T`), updated on the GPU with the
// write position in a buffer, so a training step never reads anything back:
//   enqueueColumns   Q[d, (ptr + n) % K] = KEYS[n, d] for n < N, d < D   (one invocation each)
//   advancePointer   ptr = (ptr + N) % K                                  (one invocation)
// advancePointer is a second dispatch: every enqueue invocation must read the old pointer, and
// dispatches in one pass see each other's writes in order.
//
// Bindings (inputs, then outputs, then the uniform block):
//   enqueueColumns   KEYS, PTR, Q, params
//   advancePointer   PTR (read_write), params

struct Params {
  N: u32,
  D: u32,
  K: u32,
  _pad: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> keys: array<f32>;
@group(0) @binding(1) var<storage, read> ptrIn: array<i32>;
@group(0) @binding(2) var<storage, read_write> queue: array<f32>;
@group(0) @binding(3) var<uniform> ep: Params;

@compute @workgroup_size(256)
fn enqueueColumns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= ep.N * ep.D) { return; }
  let n = i / ep.D;
  let d = i % ep.D;
  let column = (u32(ptrIn[0]) % ep.K + n) % ep.K;
  queue[d * ep.K + column] = keys[i];
}

@group(0) @binding(0) var<storage, read_write> pointer: array<i32>;
@group(0) @binding(1) var<uniform> ap: Params;

@compute @workgroup_size(1)
fn advancePointer() {
  pointer[0] = i32((u32(pointer[0]) % ap.K + ap.N) % ap.K);
}
