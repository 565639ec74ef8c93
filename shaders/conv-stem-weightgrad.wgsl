{{ENABLE}}
// The conv weight gradient for very few input channels (an image stem), stride 1
// (engine/ops/conv-stem.ts generates ACC, PROLOGUE, BODY, STORE):
// dW[co, ci, kh, kw] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh + kh - pad, ow + kw - pad].
// With one input channel that is R x 9 sums over every output pixel, so the work is streaming
// dY once. An invocation owns R output channels x every input channel and tap (one scalar
// accumulator each) and one strip of 4 output columns of `perChunk` images (gid.x: the chunk of
// images and the strip), which it walks down row by row as shaders/conv-stem-forward.wgsl does:
// a row's dY values of its R channels (a vec4 each where YV is vec4<f32>, the map's width a
// multiple of 4, else 4 values) and the input rows under the window, each input row read once.
// Each (chunk, strip) writes its own partial [Cout, Cin, kH, kW] slab, or, where SG > 1 (the
// adapter's fixed subgroup size; lane l is local invocation l mod SG), each subgroup adds its
// lanes' partial sums with subgroupAdd and its first lane writes them, a slab per subgroup
// (invocations past the work take no images but stay for the sum); the caller sums the slabs.
// Pixels past the row read dY as zero.
//
// Params: the geometry, perChunk. Bindings: dY, X -> Out.
// Defines: R, KH, KW, SG; YV, XV (f32 or vec4<f32>); code: ENABLE ('enable subgroups;' where
// SG > 1), ACC, PROLOGUE, BODY, STORE.

#interface

@compute @workgroup_size(64)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let strips = (p.OW + 3u) / 4u;
  let chunks = (p.N + p.perChunk - 1u) / p.perChunk;
  // Invocations past the work stay (with no images) where a subgroup sums its lanes' slabs.
  let live = gid.x < chunks * strips;
  let slab = select(gid.x, gid.x / SG, SG > 1u);
  let ow0 = (gid.x % strips) * 4u;
  let n0 = min((gid.x / strips) * p.perChunk, p.N);
  let n1 = min(n0 + p.perChunk, p.N);
  let co0 = gid.y * R;
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
{{ACC}}
  for (var n = n0; n < n1; n++) {
    let image = n * p.Cin * plane;
{{PROLOGUE}}
    for (var oh = 0u; oh < p.OH; oh++) {
      let dyRow = n * p.Cout * oplane + oh * p.OW;
{{BODY}}
    }
  }
  let taps = p.Cin * KH * KW;
  let outBase = slab * p.Cout * taps;
{{STORE}}
}
