enable subgroups;
// The subgroup forward conv (conv-subgroup-forward.wgsl: read its header first) with the input
// rows read as vec4s, and where the output rows allow it, stored as vec4s. Declared in
// engine/ops/conv-subgroup.ts.
//
// Why: on llvmpipe every storage-buffer access of a lane is a scalar loop over the lanes, about
// as dear for a vec4 as for one float, and the per-lane input loads and output stores are much of
// what the scalar kernel spends beyond its FMAs (a 2x4 tile at stride 2 reads 45 input values a
// channel, 15 vec4s here). The rows must be vec4-aligned: W % 4 == 0 and TC * STRIDE % 4 == 0
// (vec4RowsFit), so that every tile's first window column sits at the same lane LEAD of an
// aligned vec4, and a vec4 is either inside its row or wholly outside it (padding).
//
// Params: the geometry (W a multiple of 4) and CP. Bindings: Wp (vec4), X (vec4) -> Out (f32,
// or vec4 when OW % 4 == 0 and TC % 4 == 0: the STORE code decides). Defines: R, TR, TC, KH,
// KW, STRIDE, LEAD, NV (vec4s under a window row); code: WOFF, ACC, BODY (one input channel),
// STORE.

// The interface generated from the declaration goes here:
#interface

const NR: u32 = (TR - 1u) * STRIDE + KH;   // input rows under a tile's windows

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(subgroup_invocation_id) lane: u32) {
  let tilesW = (p.OW + TC - 1u) / TC;
  let tilesH = (p.OH + TR - 1u) / TR;
  let tiles = p.N * tilesH * tilesW;
  // Lanes past the last tile compute a copy of it and store nothing (as the scalar kernel).
  let tile = min(gid.x, tiles - 1u);
  let n = tile / (tilesH * tilesW);
  let oh0 = ((tile / tilesW) % tilesH) * TR;
  let ow0 = (tile % tilesW) * TC;
  let co0 = wid.y * R;
  let ih0 = i32(oh0 * STRIDE) - i32(p.pad);
  // The aligned vec4 holding the first window column at lane LEAD.
  let v0 = i32(ow0 * STRIDE / 4u) - i32((p.pad + LEAD) / 4u);
  let W4 = p.W / 4u;

  var rowOff: array<u32, NR>;
  var rowIn: array<bool, NR>;
  for (var i = 0u; i < NR; i++) {
    let ih = ih0 + i32(i);
    rowIn[i] = ih >= 0 && ih < i32(p.H);
    rowOff[i] = select(0u, u32(ih) * W4, rowIn[i]);
  }
  var vecOff: array<u32, NV>;
  var vecIn: array<bool, NV>;
  for (var v = 0u; v < NV; v++) {
    let iv = v0 + i32(v);
    vecIn[v] = iv >= 0 && iv < i32(W4);
    vecOff[v] = select(0u, u32(iv), vecIn[v]);
  }
  let plane = p.H * W4;
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
