enable subgroups;
// Weight gradient of a 1x1 conv without padding, any stride, for adapters with fixed subgroups
// of L = 8 (lavapipe) or 4 lanes; declared in engine/ops/conv-pointwise.ts, which generates the
// unrolled parts (code defines).
//
//   dW[co, ci] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh*s, ow*s]
//
// A 1x1 conv's weight gradient is a plain GEMM, dY (Cout x pixels) times X's strided pixels
// transposed, so this is the matmul's 'subgroup' design (shaders/matmul.wgsl) with the sum over
// pixels walked by image, row and column: an invocation owns TM output channels x TN input
// channels; the L lanes of a subgroup share the output channels (each loads TM / L of them and
// hands them around with subgroupBroadcast) and each reads its own TN input channels, one float
// each a pixel. At a stride above 1 with 64 output channels or more the caller passes a packed
// copy of X's strided pixels (conv-pointwise-subsample.wgsl) as a stride-1 X: read strided, X
// cost more per float (the same loads, twice the cache lines; ResNet-18's 64->128 32x32
// shortcut 1.2-1.4x the time of the copy and this kernel on it). The 'rolling' conv
// weight-gradient kernel, whose lanes own one input channel each against 16 output channels,
// loads 3 floats a lane for 16 multiply-adds a pixel; this one TM / L + TN, 8 + 8 for 512 with
// the rule's 64 x 8 tile.
//
// The sum over images is split into chunks of `imagesPerChunk` images (workgroup wid.z), each
// written to its own slice of Out ([chunks][Cout][Cin]); the caller adds the slices.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad), imagesPerChunk.
// Bindings: dY, X -> Out. Defines: TM, TN, STRIDE, WG_X (invocations along input channels);
// code: SETUP (clamped row and column offsets), ACC, BODY (one pixel), STORE.

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(WG_X)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
  // Columns and rows past the matrix compute copies of its last ones (the broadcasts need every
  // lane in the loop) and store nothing.
  let col0 = gid.x * TN;
  let row0 = wid.y * TM;
  let n0 = wid.z * p.imagesPerChunk;
  let n1 = min(n0 + p.imagesPerChunk, p.N);
  let dyPlane = p.OH * p.OW;
  let xPlane = p.H * p.W;
{{SETUP}}
{{ACC}}
  for (var n = n0; n < n1; n++) {
    var dyk = n * p.Cout * dyPlane;
    let xImage = n * p.Cin * xPlane;
    for (var oh = 0u; oh < p.OH; oh++) {
      var xk = xImage + oh * STRIDE * p.W;
      for (var ow = 0u; ow < p.OW; ow++) {
{{BODY}}
        dyk += 1u;
        xk += STRIDE;
      }
    }
  }
  let slice = wid.z * p.Cout * p.Cin;
{{STORE}}
}
