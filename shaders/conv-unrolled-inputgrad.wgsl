enable subgroups;
// Input gradient of a conv of any stride, padding and window, the transposed convolution
// dX = conv^T(dY, W) computed directly, with every step unrolled into named variables
// (engine/ops/conv-unrolled-inputgrad.ts generates SETUP, ACC, BODY and STORE): for adapters
// without subgroups of 8, SwiftShader above all. conv2d runs it for the input gradients that
// are not a flipped forward conv (strided ones, or padding past the window).
//
// Why this shape: SwiftShader (Chromium's software adapter) keeps a private array that a loop
// indexes in memory and gathers it lane by lane, which made the register design
// (shaders/conv.wgsl inputGrad) several times slower there than on lavapipe. Here no array is
// indexed by a loop variable: the dY row and column offsets, the dY values under a tile, the
// weights and the accumulators are all named values.
//
// As in the subgroup kernel (conv-subgroup-inputgrad.wgsl): at stride S, input pixel
// ih = S*a + ph (phase ph = ih mod S) receives only the taps kh with (ph + pad - kh) divisible
// by S, each from dY row a + (ph + pad - kh) / S. So a block of S x S input pixels (one of each
// phase) at block (a, b) reads a small fixed window of dY around (a, b), and every tap is used
// exactly once per block: no multiply by an inserted zero. Which tap feeds which phase from
// which dY offset is known when the code is generated, so the body is straight-line FMAs.
//
// Each invocation owns R input channels x (TR x TC) blocks of S x S input pixels; its
// accumulators are vec4s of 4 channels, one per pixel. A workgroup is 64 invocations: PT pixel
// tiles x 64 / PT blocks of R channels (PT < 64 fills the workgroups of small maps); PT is a
// multiple of the subgroup size, so the weights are the same in all lanes of a subgroup; as in conv-unrolled-forward.wgsl (which says why) they are loaded 4 vec4s to a subgroup
// load and handed around with subgroupBroadcast (subgroups of at least 4). The sum runs over
// Cout. Weights come packed by conv-pack.wgsl with
// FLIPPED (Wp[co][KK-1-tap][ci], ci padded to CP), read as vec4s of 4 input channels. Channels
// past Cin compute garbage from clamped addresses and are never stored; pixels past the map
// likewise.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad) and CP. Bindings: Wp
// (vec4), dY -> Out. Defines: R, TR, TC, PT, STRIDE, DH0 and DW0 (the first dY row and column under
// a tile relative to its first block); code: SETUP (dY offsets, weight columns), ACC, BODY (one
// output channel of the sum), STORE.

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(64)
fn inputGrad(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32) {
  let blocksH = (p.H + STRIDE - 1u) / STRIDE;
  let blocksW = (p.W + STRIDE - 1u) / STRIDE;
  let tilesW = (blocksW + TC - 1u) / TC;
  let tilesH = (blocksH + TR - 1u) / TR;
  let tiles = p.N * tilesH * tilesW;
  // Invocations past the last tile compute a copy of it and store nothing.
  let tileIndex = wid.x * PT + lid % PT;
  let tile = min(tileIndex, tiles - 1u);
  let n = tile / (tilesH * tilesW);
  let a0 = ((tile / tilesW) % tilesH) * TR;
  let b0 = (tile % tilesW) * TC;
  let ci0 = (wid.y * (64u / PT) + lid / PT) * R;
  let oh0 = i32(a0) + DH0;
  let ow0 = i32(b0) + DW0;
  let oplane = p.OH * p.OW;
  let image = n * p.Cout * oplane;
  let cp4 = p.CP / 4u;
  let wStride = p.kH * p.kW * cp4;  // vec4s per output channel
{{SETUP}}
{{ACC}}
  for (var co = 0u; co < p.Cout; co++) {
    let chan = image + co * oplane;
    let wBase = co * wStride;
{{BODY}}
  }

  if (tileIndex >= tiles) { return; }
  let plane = p.H * p.W;
  let outBase = n * p.Cin * plane;
{{STORE}}
}
