enable subgroups;
// Input gradient of a strided 1x1 conv without padding for adapters with fixed subgroups of
// L = 8 (lavapipe) or 4 lanes; declared in engine/ops/conv-pointwise.ts, which generates the
// unrolled parts (code defines).
//
//   dX[n, ci, oh*s, ow*s] = sum over co of W[co, ci] * dY[n, co, oh, ow], zero at other pixels
//
// Per image a GEMM, W transposed (Cin x Cout) times dY (Cout x pixels), in the matmul's
// 'subgroup' design (shaders/matmul.wgsl): an invocation owns TM input channels x TN pixels of
// dY, which run over the pixels of all images (so that small maps fill the lanes); the L lanes of a subgroup share the channels (each loads TM / L weights a step and hands
// them around with subgroupBroadcast) and read their own TN pixels, as vec4s where a plane is
// whole vec4s (YV). The products go to every s-th pixel of every s-th row; the caller zeroes
// the output first (one fill pass, cheaper than storing s*s - 1 zeros per value one lane at a
// time).
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad). Bindings: Wt, dY ->
// Out. Defines: TM, TN, STRIDE, WG_X, YV (dY's element: f32 or vec4<f32>); code: SETUP, ACC,
// BODY (one output channel of dY), STORE.

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(WG_X)
fn inputGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32) {
  // Columns and rows past the matrix compute copies of its last ones (the broadcasts need every
  // lane in the loop) and store nothing.
  let col0 = gid.x * TN;
  let row0 = wid.y * TM;
  let pixels = p.OH * p.OW;
  let columns = p.N * pixels;
{{SETUP}}
{{ACC}}
  for (var k = 0u; k < p.Cout; k++) {
{{BODY}}
  }
  let plane = p.H * p.W;
{{STORE}}
}
