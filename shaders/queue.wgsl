// MoCo's queue of negatives, a ring buffer of D-dimensional keys stored as the columns of
// Q [D, K] (PyTorch's layout: `queue[:, ptr:ptr + N] = keys.T`), updated on the GPU with the
// write position in a buffer, so a training step never reads anything back:
//   enqueueColumns   Q[d, (ptr + n) % K] = KEYS[n, d] for n < N, d < D   (one invocation each)
//   advancePointer   ptr = (ptr + N) % K                                  (one invocation)
// advancePointer is a second dispatch: every enqueue invocation must read the old pointer, and
// dispatches in one pass see each other's writes in order.
//
// Bindings: enqueueColumns reads keys and ptrIn and writes queue; advancePointer updates pointer.

// The interface generated from the declaration in engine/ops/queue.ts (struct Params: N, D, K;
// bindings) goes here:
#interface

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn enqueueColumns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.N * p.D) { return; }
  let n = i / p.D;
  let d = i % p.D;
  let column = (u32(ptrIn[0]) % p.K + n) % p.K;
  queue[d * p.K + column] = keys[i];
}

@compute @workgroup_size(1)
fn advancePointer() {
  pointer[0] = i32((u32(pointer[0]) % p.K + p.N) % p.K);
}
