enable subgroups;
// Direct convolution for adapters with subgroups of 8 (lavapipe): the forward conv, and through
// a flipped weight the stride-1 input gradient. Declared in engine/ops/conv.ts.
//
// Why this shape: llvmpipe runs 8 invocations in the lanes of one SIMD register, and every
// storage-buffer load is a per-lane scalar loop there (about 15 instructions a lane), while a
// broadcast from one lane to the others is one or two. So the operand all 8 lanes share, the
// weights, is loaded once per subgroup (each lane a different vec4) and handed around with
// subgroupBroadcast; only the input pixels, different in every lane, are loaded per lane.
//
// Each invocation owns R output channels x (TR x TC) output pixels. The workgroup is 64
// invocations along the pixels, all on the same R channels (workgroup row wid.y), so every
// subgroup shares its weights. Per input channel the KH x KW window taps are unrolled (the
// body is generated in engine/ops/conv.ts, the code define BODY), loading the NR x NS input values under
// the tile's windows once and the R x KH x KW weights once.
//
// Weights come packed (conv.wgsl packWeights) as Wp[ci][tap][co] with co padded to CP (a
// multiple of 4), read as vec4s of 4 output channels. Channels past Cout compute garbage from
// clamped addresses and are never stored; pixels past the map likewise.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad) and CP. Bindings: Wp
// (vec4), X -> Out. Defines: R, TR, TC, KH, KW, STRIDE; code: ACC (accumulator declarations),
// WOFF (per-lane weight offsets), BODY (one input channel), STORE.

// The interface generated from the declaration goes here:
#interface

const KK: u32 = KH * KW;
const NR: u32 = (TR - 1u) * STRIDE + KH;   // input rows under a tile's windows
const NS: u32 = (TC - 1u) * STRIDE + KW;   // input columns under a tile's windows
const WV: u32 = KK * R / 4u;               // weight vec4s per input channel

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(subgroup_invocation_id) lane: u32) {
  let tilesW = (p.OW + TC - 1u) / TC;
  let tilesH = (p.OH + TR - 1u) / TR;
  let tiles = p.N * tilesH * tilesW;
  // Lanes past the last tile compute a copy of it (no divergent exit: llvmpipe would mask every
  // later write) and store nothing.
  let tile = min(gid.x, tiles - 1u);
  let n = tile / (tilesH * tilesW);
  let oh0 = ((tile / tilesW) % tilesH) * TR;
  let ow0 = (tile % tilesW) * TC;
  let co0 = wid.y * R;
  let ih0 = i32(oh0 * STRIDE) - i32(p.pad);
  let iw0 = i32(ow0 * STRIDE) - i32(p.pad);

  // Input rows and columns under the windows: offsets and whether they are inside (padding).
  var rowOff: array<u32, NR>;
  var rowIn: array<bool, NR>;
  for (var i = 0u; i < NR; i++) {
    let ih = ih0 + i32(i);
    rowIn[i] = ih >= 0 && ih < i32(p.H);
    rowOff[i] = select(0u, u32(ih) * p.W, rowIn[i]);
  }
  var colOff: array<u32, NS>;
  var colIn: array<bool, NS>;
  for (var t = 0u; t < NS; t++) {
    let iw = iw0 + i32(t);
    colIn[t] = iw >= 0 && iw < i32(p.W);
    colOff[t] = select(0u, u32(iw), colIn[t]);
  }
  let plane = p.H * p.W;
  let image = n * p.Cin * plane;
  let wStride = KK * p.CP / 4u;  // vec4s per input channel
{{WOFF}}
{{ACC}}
  for (var ci = 0u; ci < p.Cin; ci++) {
    let chan = image + ci * plane;
    let wBase = ci * wStride;
{{BODY}}
  }

  if (gid.x >= tiles) { return; }
  let oplane = p.OH * p.OW;
  let outBase = n * p.Cout * oplane;
{{STORE}}
}
