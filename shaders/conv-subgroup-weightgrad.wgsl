enable subgroups;
// Weight gradient of a conv for adapters with fixed subgroups of L = 8 (lavapipe) or 4 lanes (the
// code generator's L); declared in
// engine/ops/conv-subgroup.ts, which generates the unrolled parts (code defines).
//
//   dW[co, ci, kh, kw] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh*s + kh - pad, ow*s + kw - pad]
//
// Lanes run along input channels (one ci each) and all lanes of a subgroup share the R output
// channels of the workgroup (row wid.y), so the dY values a step needs are the same in every
// lane: the subgroup loads them once, each lane a few (per-lane loads are the expensive part
// on llvmpipe, see conv-subgroup-forward.wgsl), and hands them around with subgroupBroadcast.
// Each lane loads only its own channel's input under the windows. A step covers PX output
// pixels of one row: R x PX values of dY, KH x NS inputs, R x KH x KW x PX multiply-adds.
//
// The sum over (n, oh) rows is split into chunks of `rowsPerChunk` rows (workgroup wid.z), each
// written to its own slice of Out ([chunks][Cout][Cin][kH][kW]); engine/ops/conv-subgroup.ts
// adds the slices when there is more than one.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad) and rowsPerChunk.
// Bindings: dY, X -> Out. Defines: R, PX, KH, KW, STRIDE, WG (workgroup size, a multiple of
// 8); code: DYOFF (per-lane dY offsets), ACC (accumulators), BODY (one step), STORE.

// The interface generated from the declaration goes here:
#interface

const KK: u32 = KH * KW;
const NS: u32 = (PX - 1u) * STRIDE + KW;   // input columns under a step's windows

@compute @workgroup_size(WG)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
  // Lanes past the last channel compute a copy of it (no divergent exit) and store nothing.
  let ci = min(gid.x, p.Cin - 1u);
  let co0 = wid.y * R;
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
  let rows = p.N * p.OH;
  let row0 = wid.z * p.rowsPerChunk;
  let row1 = min(row0 + p.rowsPerChunk, rows);
{{DYOFF}}
{{ACC}}
  for (var row = row0; row < row1; row++) {
    let n = row / p.OH;
    let oh = row % p.OH;
    let dyRow = n * p.Cout * oplane + oh * p.OW;
    let xImage = (n * p.Cin + ci) * plane;
    var rowOff: array<u32, KH>;
    var rowIn: array<bool, KH>;
    for (var kh = 0u; kh < KH; kh++) {
      let ih = i32(oh * STRIDE + kh) - i32(p.pad);
      rowIn[kh] = ih >= 0 && ih < i32(p.H);
      rowOff[kh] = xImage + select(0u, u32(ih) * p.W, rowIn[kh]);
    }
    for (var ow0 = 0u; ow0 < p.OW; ow0 += PX) {
      let iwStart = i32(ow0 * STRIDE) - i32(p.pad);
{{BODY}}
    }
  }

  if (gid.x >= p.Cin) { return; }
  let slice = wid.z * p.Cout * p.Cin * KK;
{{STORE}}
}
