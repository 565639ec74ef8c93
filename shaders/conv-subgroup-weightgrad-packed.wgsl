enable subgroups;
// Weight gradient of a conv for adapters with fixed subgroups of L = 8 (lavapipe) or 4 lanes (the
// code generator's L), reading zero-padded,
// vec4-aligned copies of X and dY; declared in engine/ops/conv-subgroup.ts, which generates the
// unrolled parts (code defines) and makes the copies (shaders/conv-weightgrad-pad.wgsl).
//
//   dW[co, ci, kh, kw] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh*s + kh - pad, ow*s + kw - pad]
//
// Why: the lane mapping is conv-subgroup-weightgrad.wgsl's (lanes along input channels, the R x
// PX values of dY a step needs loaded once per subgroup and handed around with
// subgroupBroadcast), but there every input value is a separate load with bounds selects, and
// llvmpipe runs each load whose address differs per lane as a scalar loop over the lanes (a
// vec4 load is one loop for four values). At stride 2 a step of PX pixels reads 2 PX + 1 input
// columns per window row; leaving those loads out halved that kernel's time. Here the copies
// make every row start on a vec4 and hold zeros where the map does not reach (the padding,
// pixels past the row), so a step's input row is ceil(NS / 4) vec4 loads with no bounds
// selects, and dY's R x PX values R x PX / 4 vec4 loads shared by the lanes. PX is a multiple
// of 4 and PX * STRIDE too, so every step starts on a vec4.
//
// Copies (shaders/conv-weightgrad-pad.wgsl): Xp [N * Cin][Hp][Wp], X shifted down and right by
// pad; dYp [N * Cout][OH][OWp] (dY itself when OW is a whole number of steps). Hp and Wp cover
// every row and column a step reads; Wp and OWp are multiples of 4.
//
// The sum over (n, oh) rows is split into chunks of `rowsPerChunk` rows (workgroup wid.z), each
// written to its own slice of Out ([chunks][Cout][Cin][kH][kW]); the caller adds the slices.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad), rowsPerChunk, Hp, Wp,
// OWp. Bindings: dYp, Xp (vec4) -> Out. Defines: R, PX, KH, KW, STRIDE, WG (workgroup size, a
// multiple of L); code: DYOFF (per-lane dY offsets), ACC (accumulators), BODY (one step), STORE.

// The interface generated from the declaration goes here:
#interface

const KK: u32 = KH * KW;

@compute @workgroup_size(WG)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
  // Lanes past the last channel compute a copy of it (no divergent exit) and store nothing.
  let ci = min(gid.x, p.Cin - 1u);
  let co0 = wid.y * R;
  let rows = p.N * p.OH;
  let row0 = wid.z * p.rowsPerChunk;
  let row1 = min(row0 + p.rowsPerChunk, rows);
  let xRowStride = p.Wp / 4u;
  let dyPlane = p.OH * p.OWp / 4u;
{{DYOFF}}
{{ACC}}
  for (var row = row0; row < row1; row++) {
    let n = row / p.OH;
    let oh = row % p.OH;
    let dyRow = n * p.Cout * dyPlane + oh * (p.OWp / 4u);
    let xRow = ((n * p.Cin + ci) * p.Hp + oh * STRIDE) * xRowStride;
    for (var ow0 = 0u; ow0 < p.OW; ow0 += PX) {
      let dyStep = dyRow + ow0 / 4u;
      let xStep = xRow + ow0 * STRIDE / 4u;
{{BODY}}
    }
  }

  if (gid.x >= p.Cin) { return; }
  let slice = wid.z * p.Cout * p.Cin * KK;
{{STORE}}
}
