// The streaming ceiling of the memory-bound benchmarks (bench/harness.ts versusCopy): the
// simplest compute kernel that reads and writes each byte once, Out = In, vec4 loads and stores,
// PER vec4s per invocation over a contiguous run (the layout every fast path here uses;
// docs/environment.md#speed-on-lavapipe). Nothing an op kernel does can beat it on the same
// adapter by much, so a kernel's fraction of it says how much is left to gain in the kernel
// itself, where the copy's fraction (a driver memcpy on lavapipe) also counts what a compute
// shader cannot reach.
//
// Declared in bench/stream-kernel.ts. Params: n4, the vec4s to move. Bindings: In -> Out.

// The interface generated from that declaration goes here:
#interface

const WG: u32 = 256u;
const PER: u32 = 8u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let first = (gid.x + gid.y * nwg.x * WG) * PER;
  let last = min(first + PER, p.n4);
  for (var i = first; i < last; i++) {
    Out[i] = In[i];
  }
}
