enable subgroups;
// Direct convolution with every step unrolled into named variables (engine/ops/conv-unrolled.ts
// generates SETUP, ACC, BODY and STORE): the forward conv, and through a flipped weight the
// stride-1 input gradient, for adapters without subgroups of 8.
//
// Why this shape: SwiftShader (Chromium's software adapter) keeps a private array that a loop
// indexes in memory and gathers it lane by lane, which made the register design
// (shaders/conv.wgsl) about 10x slower there than on lavapipe. Here no array is indexed by a
// loop variable: the window offsets, the input values under the tile's windows, the weights and
// the accumulators are all named values.
//
// SwiftShader loads every value whose address is not a compile-time constant lane by lane (a
// gather, some 16 multiply-adds' time), even where all lanes read the same address. So the
// weights, the same in every lane, are loaded once per 4 lanes: lane l of each 4 loads vec4
// number 4j + l of the channel's weights, and subgroupBroadcast hands each to all lanes (about
// 2 multiply-adds' time a weight). Only the input pixels, different in every lane, are loaded
// per lane; bigger tiles share each of them among more multiply-adds.
//
// Each invocation owns R output channels x (TR x TC) output pixels, held as vec4s of 4 pixels
// (the last one padded with zeros when TR * TC is not a multiple of 4). A workgroup is 64
// invocations: PT pixel tiles x 64 / PT blocks of R channels (PT < 64 fills the workgroups of
// small maps, e.g. 16 images' 4x4 maps are 16 tiles); PT is a multiple of the subgroup size, so
// the lanes of a subgroup work on the same channels. Weights come
// packed (shaders/conv-pack.wgsl) as Wp[ci][tap][co] with co padded to CP (a multiple of 4),
// read as vec4s of 4 channels. Channels past Cout compute garbage from clamped addresses and are
// never stored; pixels past the map likewise. Subgroups must be at least 4 wide; no invocation
// leaves before the last broadcast.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad) and CP. Bindings: Wp
// (vec4), X -> Out. Defines: R, TR, TC, PT; code: SETUP, ACC, BODY (one input channel), STORE.

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(64)
fn forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(subgroup_invocation_id) lane: u32) {
  let tilesW = (p.OW + TC - 1u) / TC;
  let tilesH = (p.OH + TR - 1u) / TR;
  let tiles = p.N * tilesH * tilesW;
  let tileIndex = wid.x * PT + lid % PT;
  // Invocations past the last tile compute a copy of it and store nothing.
  let tile = min(tileIndex, tiles - 1u);
  let n = tile / (tilesH * tilesW);
  let oh0 = ((tile / tilesW) % tilesH) * TR;
  let ow0 = (tile % tilesW) * TC;
  let co0 = (wid.y * (64u / PT) + lid / PT) * R;
  let ih0 = i32(oh0 * p.stride) - i32(p.pad);
  let iw0 = i32(ow0 * p.stride) - i32(p.pad);
  let plane = p.H * p.W;
  let image = n * p.Cin * plane;
  let cp4 = p.CP / 4u;
  let wStride = p.kH * p.kW * cp4;  // vec4s per input channel
{{SETUP}}
{{ACC}}
  for (var ci = 0u; ci < p.Cin; ci++) {
    let chan = image + ci * plane;
    let wBase = ci * wStride;
{{BODY}}
  }

  if (tileIndex >= tiles) { return; }
  let oplane = p.OH * p.OW;
  let outBase = n * p.Cout * oplane;
{{STORE}}
}
