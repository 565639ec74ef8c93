enable subgroups;
// Weight gradient of a conv with few input channels (the image stem: Cin = 1) for adapters with
// fixed subgroups of LANES = 8 (lavapipe) or 4; declared in engine/ops/conv-subgroup.ts, which generates the
// unrolled parts (code defines). Reads the zero-padded, vec4-aligned copies of X and dY that
// conv-subgroup-weightgrad-rolling.wgsl reads where X is not aligned (made by
// conv-weightgrad-pad.wgsl): Xp [N * Cin][Hp][Wp], X shifted down and right by pad; dYp
// [N * Cout][OH][OWp] (dY itself when OW is a whole number of steps).
//
//   dW[co, ci, kh, kw] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh*s + kh - pad, ow*s + kw - pad]
//
// Why: the other weight-gradient kernels run their lanes along input channels, so with one
// input channel all lanes but one are idle. Here a workgroup is one subgroup on one input channel
// (wid.x) and R output channels (wid.y), and its LANES lanes take turns over the (n, oh) rows of
// the sum: lane l sums rows rb + l. Each lane loads its own row's R x PX values of dY (vec4s)
// and the ceil(NS / 4) vec4s of each input row under its windows; nothing is shared, and at the
// end subgroupAdd sums the lanes' partial sums of each weight.
//
// The sum over (n, oh) rows is split into chunks of `rowsPerChunk` rows (workgroup wid.z), each
// written to its own slice of Out ([chunks][Cout][Cin][kH][kW]); the caller adds the slices.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad), rowsPerChunk, Hp, Wp,
// OWp. Bindings: dYp, Xp (vec4) -> Out. Defines:
// R, PX (a multiple of 4, PX * STRIDE too), KH, KW, STRIDE, LANES (the subgroup size, also the
// workgroup's); code: DYOFF (per-channel dY
// offsets), ACC (accumulators), BODY (one step of one row), STORE (the sums over lanes).

// The interface generated from the declaration goes here:
#interface

const KK: u32 = KH * KW;

@compute @workgroup_size(LANES)
fn weightGrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let ci = wid.x;
  let co0 = wid.y * R;
  let rows = p.N * p.OH;
  let row0 = wid.z * p.rowsPerChunk;
  let row1 = min(row0 + p.rowsPerChunk, rows);
  let xRowStride = p.Wp / 4u;
  let dyPlane = p.OH * p.OWp / 4u;
{{DYOFF}}
{{ACC}}
  for (var rb = row0; rb < row1; rb += LANES) {
    // A lane past the chunk's last row reads that row and adds nothing (its dY is zeroed).
    let live = rb + lane < row1;
    let row = min(rb + lane, row1 - 1u);
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

  let slice = wid.z * p.Cout * p.Cin * KK;
{{STORE}}
}
