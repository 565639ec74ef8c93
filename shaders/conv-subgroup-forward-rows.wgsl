enable subgroups;
// The subgroup forward conv (conv-subgroup-forward.wgsl: read its header first) with the input
// rows read as vectors XV of VX = 2 or 4 floats, and where the output rows allow it, stored as
// vectors OV. Declared in engine/ops/conv-subgroup.ts.
//
// Why: on llvmpipe every storage-buffer access of a lane is a scalar loop over the lanes, about
// as dear for a vec4 as for one float, and the per-lane input loads and output stores are much of
// what the scalar kernel spends beyond its FMAs (a 2x4 tile at stride 2 reads 45 input values a
// channel, 15 vec4s here). The rows must be aligned: W % VX == 0 and TC * STRIDE % VX == 0
// (rowVectorFits), so that every tile's first window column sits at the same lane LEAD of an
// aligned vector, and a vector is either inside its row or wholly outside it (padding).
//
// Params: the geometry (W a multiple of VX) and CP. Bindings: Wp (vec4), X (XV) -> Out (OV: f32,
// or a vector of 2 or 4 where TC and OW are multiples of it). Defines: R, TR, TC, KH, KW,
// STRIDE, VX, LEAD, NV (vectors under a window row), XV, OV; code: WOFF, ACC, BODY (one input
// channel), STORE.

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
  // The aligned vector holding the first window column at lane LEAD.
  let v0 = i32(ow0 * STRIDE / VX) - i32((p.pad + LEAD) / VX);
  let WV = p.W / VX;

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
