// The conv weight gradient for very few input channels (an image stem), stride 1
// (engine/ops/conv-stem.ts generates ACC, BODY, STORE):
// dW[co, ci, kh, kw] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh + kh - pad, ow + kw - pad].
// With one input channel that is R x 9 sums over every output pixel, so the work is streaming
// dY once. An invocation owns R output channels x every input channel and tap (one scalar
// accumulator each) and a chunk of `rowsPerChunk` (n, oh) rows (wid.x), which it walks in strips
// of 4 pixels: the strip's dY values of its R channels (a vec4 each where YV is vec4<f32>, the
// map's width a multiple of 4, else 4 values) and the input columns under the strip's windows,
// read as in shaders/conv-stem-forward.wgsl. Each chunk writes its own partial
// [Cout, Cin, kH, kW] slab; the caller sums the slabs. Pixels past the row read dY as zero.
//
// Params: N, Cin, H, W, Cout, OH, OW, pad, rowsPerChunk.
// Bindings: dY, X -> Out. Defines: R; YV, XV (f32 or vec4<f32>); code: ACC, BODY, STORE.

#interface

@compute @workgroup_size(64)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>) {
  let rows = p.N * p.OH;
  let chunk = gid.x;
  let chunks = (rows + p.rowsPerChunk - 1u) / p.rowsPerChunk;
  if (chunk >= chunks) { return; }
  let co0 = gid.y * R;
  let row0 = chunk * p.rowsPerChunk;
  let row1 = min(row0 + p.rowsPerChunk, rows);
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
{{ACC}}
  for (var row = row0; row < row1; row++) {
    let n = row / p.OH;
    let oh = row % p.OH;
    let image = n * p.Cin * plane;
    let dyRow = n * p.Cout * oplane + oh * p.OW;
    for (var ow0 = 0u; ow0 < p.OW; ow0 += 4u) {
{{BODY}}
    }
  }
  let taps = p.Cin * KH * KW;
  let outBase = chunk * p.Cout * taps;
{{STORE}}
}
