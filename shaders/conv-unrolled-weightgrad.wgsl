enable subgroups;
// The conv weight gradient with every step unrolled into named variables
// (engine/ops/conv-unrolled-weightgrad.ts generates SETUP, ACC, ROW, BODY and STORE):
// dW[co, ci, kh, kw] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh*s + kh - pad, ow*s + kw - pad],
// for adapters without subgroups of 8.
//
// Why this shape: SwiftShader (Chromium's software adapter) keeps a private array that a loop
// indexes in memory and gathers it lane by lane, which made the register design
// (shaders/conv.wgsl weightGrad) several times slower there than on lavapipe. Here no array is
// indexed by a loop variable: the channel offsets, the window offsets, the gradient and input
// values of a step and the accumulators are all named values.
//
// Each invocation owns one input channel ci (its lane) and R output channels x every tap of the
// window, one vec4 accumulator per tap and group of 4 output channels. A step takes PX output
// pixels of one row: the R x PX values of dY (the same in every lane of a workgroup, which shares
// its channels and rows) and the input values under their windows. SwiftShader loads every value
// lane by lane even where the address is the same in all lanes, so the dY values are loaded once
// per 4 lanes (lane l of each 4 loads value 4j + l) and handed around with subgroupBroadcast;
// subgroups must be at least 4 wide. LOOP walks the rows either one step a loop turn or with
// whole rows unrolled, a few of them a turn (the tile's rowsPerTurn): on SwiftShader each loop
// turn costs in proportion to the accumulators it carries, so small maps ran mostly loop
// overhead with one step a turn. The sum over the
// (n, oh) rows is split into chunks of `rowsPerChunk` rows (workgroup wid.z), each writing its own
// partial [Cout, Cin, kH, kW] slab; the caller sums the slabs. Output channels past Cout read a
// clamped channel and are never stored; pixels past the row read as zero.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad) and rowsPerChunk.
// Bindings: dY, X -> Out. Defines: R, PX, WG; code: SETUP, ACC, LOOP, STORE.

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(WG)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
  // Lanes past the last channel compute a copy of it (the subgroup broadcasts need every lane)
  // and store nothing.
  let ci = min(gid.x, p.Cin - 1u);
  let co0 = wid.y * R;
  let rows = p.N * p.OH;
  let row0 = wid.z * p.rowsPerChunk;
  let row1 = min(row0 + p.rowsPerChunk, rows);
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
{{SETUP}}
{{ACC}}
{{LOOP}}

  if (gid.x >= p.Cin) { return; }
  let taps = p.kH * p.kW;
  let outBase = wid.z * p.Cout * p.Cin * taps + ci * taps;
{{STORE}}
}
