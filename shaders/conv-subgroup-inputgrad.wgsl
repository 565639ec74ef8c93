enable subgroups;
// Input gradient of a conv of any stride, padding and window, for adapters with fixed subgroups
// of L = 8 (lavapipe) or 4 lanes (the code generator's L): the transposed convolution dX = conv^T(dY, W), computed directly. Declared in
// engine/ops/conv-subgroup.ts, which also generates the unrolled code defines.
//
// Why this shape: at stride S, input pixel ih = S*a + ph (phase ph = ih mod S) receives only
// the taps kh with (ph + pad - kh) divisible by S, each from dY row a + (ph + pad - kh) / S.
// So a block of S x S input pixels (one of each phase) at block (a, b) reads a small fixed
// window of dY around (a, b), and every tap of the window is used exactly once per block: no
// multiply by an inserted zero, no scatter copy. Which tap feeds which phase from which dY
// offset is known when the code is generated, so the body is straight-line FMAs.
//
// As in the forward kernel (conv-subgroup-forward.wgsl), the operand shared by the subgroup,
// the weights, is loaded once per subgroup (a vec4 of 4 input channels a lane) and handed
// around with subgroupBroadcast; only dY values, different in every lane, are loaded per lane.
// Each invocation owns R input channels x (TR x TC) blocks of S x S input pixels; its
// accumulators are vec4s of 4 channels, one per pixel. The workgroup is 64 invocations along
// the pixels, all on the same R channels (workgroup row wid.y). The sum runs over Cout.
//
// Weights come packed by conv-pack.wgsl with FLIPPED (Wp[co][KK-1-tap][ci], ci padded to CP).
// Channels past Cin compute garbage from clamped addresses and are never stored; pixels past
// the map likewise.
//
// dY rows are read as vectors YV of VX = 1, 2 or 4 floats: on llvmpipe a per-lane load costs
// about the same for a vector as for one float (conv-subgroup-forward.wgsl).
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad) and CP. Bindings: Wp
// (vec4), dY (YV) -> Out. Defines: R, TR, TC, STRIDE, NR (dY rows under a tile) and DH0 (the
// first relative to the tile's first block), VX, YV, NV (dY vectors under a tile row) and
// VFIRST (the first relative to the tile's first block, in vectors); code: WOFF (per-lane
// weight offsets), ACC (accumulators), BODY (one output channel of the sum), STORE.

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(64)
fn inputGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32) {
  let blocksH = (p.H + STRIDE - 1u) / STRIDE;
  let blocksW = (p.W + STRIDE - 1u) / STRIDE;
  let tilesW = (blocksW + TC - 1u) / TC;
  let tilesH = (blocksH + TR - 1u) / TR;
  let tiles = p.N * tilesH * tilesW;
  // Lanes past the last tile compute a copy of it (no divergent exit: llvmpipe would mask every
  // later write) and store nothing.
  let tile = min(gid.x, tiles - 1u);
  let n = tile / (tilesH * tilesW);
  let a0 = ((tile / tilesW) % tilesH) * TR;
  let b0 = (tile % tilesW) * TC;
  let ci0 = wid.y * R;
  let oh0 = i32(a0) + DH0;
  // dY rows are read as vectors of VX (TC and OW multiples of VX): the window's first column
  // lies in vector v0 (at the lane the BODY code knows).
  let v0 = i32(b0 / VX) + VFIRST;
  let OWV = p.OW / VX;

  // dY rows and columns under the tile: offsets and whether they exist.
  var rowOff: array<u32, NR>;
  var rowIn: array<bool, NR>;
  for (var i = 0u; i < NR; i++) {
    let oh = oh0 + i32(i);
    rowIn[i] = oh >= 0 && oh < i32(p.OH);
    rowOff[i] = select(0u, u32(oh) * OWV, rowIn[i]);
  }
  var colOff: array<u32, NV>;
  var colIn: array<bool, NV>;
  for (var j = 0u; j < NV; j++) {
    let ov = v0 + i32(j);
    colIn[j] = ov >= 0 && ov < i32(OWV);
    colOff[j] = select(0u, u32(ov), colIn[j]);
  }
  let oplane = p.OH * OWV;  // in vectors
  let image = n * p.Cout * oplane;
  let wStride = p.kH * p.kW * p.CP / 4u;  // vec4s per output channel
{{WOFF}}
{{ACC}}
  for (var co = 0u; co < p.Cout; co++) {
    let chan = image + co * oplane;
    let wBase = co * wStride;
{{BODY}}
  }

  if (gid.x >= tiles) { return; }
  let plane = p.H * p.W;
  let outBase = n * p.Cin * plane;
{{STORE}}
}
