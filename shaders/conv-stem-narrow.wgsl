// The conv forward for very few output channels (at most 4) and any number of input channels,
// stride 1 (engine/ops/conv-stem.ts generates SETUP, BODY, STORE): above all the stride-1 input
// gradient of an image stem, a flipped forward conv from the stem's 16 or 64 output channels to
// its 1 or 3 input channels. Kernels that tile output channels in blocks of 4 or 8 would spend
// most of their multiply-adds on padded channels there; this one holds every output channel.
//
// out[n, co, oh, ow0 + j] = sum over (ci, kh, kw) of W[co, ci, kh, kw] * X[n, ci, oh + kh - pad, ow0 + j + kw - pad]
//
// An invocation owns a strip of 4 output pixels along a row, a chunk of TR output rows (wid.z)
// and every output channel: TR x Cout vec4 accumulators. It loops over the input channels; for
// each it loads that channel's Cout x kH x kW weights once, then reads the TR + kH - 1 input rows
// under the chunk one at a time (each once, as the vec4s that cover the strip's columns where XV
// is vec4<f32>, else value by value; rows and columns past the map read as zero from a clamped
// address) and adds each row into the accumulators of the output rows whose window it is in.
//
// Params: the geometry, perChunk (TR, also unrolled into the generated code).
// Bindings: Wt (the weight, [Cout, Cin, kH, kW], or its flipped [Cin, Cout, kH, kW] form), X -> Out.
// Defines: XV, OV (f32 or vec4<f32>); code: SETUP, BODY, STORE.

#interface

@compute @workgroup_size(64)
fn narrow(@builtin(global_invocation_id) gid: vec3<u32>) {
  let strips = (p.OW + 3u) / 4u;
  let n = gid.x / strips;
  if (n >= p.N) { return; }
  let ow0 = (gid.x % strips) * 4u;
  let oh0 = gid.z * p.perChunk;
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
  let image = n * p.Cin * plane;
  let outImage = n * p.Cout * oplane;
{{SETUP}}
  for (var ci = 0u; ci < p.Cin; ci++) {
    let chan = image + ci * plane;
{{BODY}}
  }
{{STORE}}
}
