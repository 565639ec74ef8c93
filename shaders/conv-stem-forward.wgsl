// The conv forward for very few input channels (an image stem: 1 or 3 channels), stride 1
// (engine/ops/conv-stem.ts generates WEIGHTS, PROLOGUE, BODY): there the work is mostly
// storing the output (9 multiply-adds per output value and input channel), so an invocation
// owns a strip of 4 output pixels along a row, for R output channels, and walks down the map,
// storing each row's R vec4s (or 4 scalars where the map's width is not a multiple of 4).
// Walking down, each input row is read once: the window's first kH - 1 rows are read before
// the walk (PROLOGUE) and kept in variables, each output row reads the one row that enters the
// window and moves it down.
//
// out[n, co, oh, ow0 + j] = sum over (ci, kh, kw) of W[co, ci, kh, kw] * X[n, ci, oh + kh - pad, ow0 + j + kw - pad]
//
// The R x Cin x kH x kW weights are loaded once per invocation (WEIGHTS), outside the row loop.
// Each row of the window is read as the input columns ow0 - pad .. ow0 + 3 + kW - 1 - pad: where
// XV is vec4<f32> (the input's width a multiple of 4) as the vec4s that cover them, else value by
// value; columns and rows past the map read as zero (from a clamped address). The 4 pixels'
// values under tap kw are then one vec4 (columns kw .. kw + 3), so every multiply-add is a vec4
// weight-times-pixels step into the channel's vec4 accumulator.
//
// Params: the geometry, perChunk (wid.z takes that many output rows of the map).
// Bindings: Wt (the weight, [Cout, Cin, kH, kW], or its flipped [Cin, Cout, kH, kW] form), X -> Out.
// Defines: R; XV, OV (f32 or vec4<f32>); code: WEIGHTS, PROLOGUE, BODY.

#interface

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let strips = (p.OW + 3u) / 4u;
  let n = gid.x / strips;
  if (n >= p.N) { return; }
  let ow0 = (gid.x % strips) * 4u;
  let co0 = gid.y * R;
  let oh0 = gid.z * p.perChunk;
  let oh1 = min(oh0 + p.perChunk, p.OH);
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
  let image = n * p.Cin * plane;
  let outImage = n * p.Cout * oplane;
{{WEIGHTS}}
{{PROLOGUE}}
  for (var oh = oh0; oh < oh1; oh++) {
{{BODY}}
  }
}
