enable subgroups;
// Direct convolution for adapters with fixed subgroups of L = 8 (lavapipe) or 4 lanes (the code
// generator's L; lanes 0 to L-1 hold the shared loads): the forward conv, and through
// a flipped weight the stride-1 input gradient. Declared in engine/ops/conv-subgroup.ts, which
// generates the unrolled code defines.
//
// Why this shape: llvmpipe runs 8 invocations in the lanes of one SIMD register, and every
// storage-buffer load is a per-lane scalar loop there (about 15 instructions a lane), while a
// broadcast from one lane to the others is one or two. So the operand all 8 lanes share, the
// weights, is loaded once per subgroup (each lane a different vec4) and handed around with
// subgroupBroadcast; only the input pixels, different in every lane, are loaded per lane.
//
// Each invocation owns R output channels x (TR x TC) output pixels. The workgroup is 64
// invocations along the pixels, all on the same R channels (workgroup row wid.y), so every
// subgroup shares its weights. Per input channel the KH x KW window taps are unrolled (BODY),
// loading the NR x NS input values under the tile's windows once and the R x KH x KW weights
// once.
//
// The input rows are read as vectors XV of VX = 1, 2 or 4 floats. On lavapipe a per-lane load
// checks and loads each component on its own (docs/environment.md), so a vector saves only the
// per-lane overhead, and the input loads are most of what the kernel spends (a 2x4 tile at
// stride 2 reads 45 input values a channel, 15 vec4s): wide tiles and channel blocks, which
// serve more FMAs per loaded float, matter more than the vector width. Vectors
// need aligned rows: W % VX == 0 and TC * STRIDE % VX == 0 (rowVectorFits), so that every tile's first window column sits at the same lane LEAD of an
// aligned vector, and a vector is either inside its row or wholly outside it (padding). Where
// the output rows allow it, outputs are stored as vectors OV of 2 or 4.
//
// Weights come packed (conv-pack.wgsl) as Wp[ci][tap][co] with co padded to CP (a multiple of
// 4), read as vec4s of 4 output channels. Channels past Cout compute garbage from clamped
// addresses and are never stored; pixels past the map likewise.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad) and CP. Bindings: Wp
// (vec4), X (XV) -> Out (OV: f32, or a vector of 2 or 4 where TC and OW are multiples of it).
// Defines: R, TR, TC, KH, KW, STRIDE, VX, LEAD, NV (vectors under a window row), XV, OV; code:
// WOFF (per-lane weight offsets), ACC (accumulators), BODY (one input channel), STORE.

// The interface generated from the declaration goes here:
#interface

const NR: u32 = (TR - 1u) * STRIDE + KH;   // input rows under a tile's windows

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
  // The aligned vector holding the first window column at lane LEAD.
  let v0 = i32(ow0 * STRIDE / VX) - i32((p.pad + LEAD) / VX);
  let WV = p.W / VX;

  // Input rows and vectors under the windows: offsets and whether they are inside (padding).
  var rowOff: array<u32, NR>;
  var rowIn: array<bool, NR>;
  for (var i = 0u; i < NR; i++) {
    let ih = ih0 + i32(i);
    rowIn[i] = ih >= 0 && ih < i32(p.H);
    rowOff[i] = select(0u, u32(ih) * WV, rowIn[i]);
  }
  var vecOff: array<u32, NV>;
  var vecIn: array<bool, NV>;
  for (var v = 0u; v < NV; v++) {
    let iv = v0 + i32(v);
    vecIn[v] = iv >= 0 && iv < i32(WV);
    vecOff[v] = select(0u, u32(iv), vecIn[v]);
  }
  let plane = p.H * WV;
  let image = n * p.Cin * plane;
  let wStride = KH * KW * p.CP / 4u;  // weight vec4s per input channel
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
