enable subgroups;
// The conv forward for very few output channels (at most 4) and any number of input channels,
// stride 1 (engine/ops/conv-stem.ts generates SETUP, BODY, STORE): above all the stride-1 input
// gradient of an image stem, a flipped forward conv from the stem's 16 or 64 output channels to
// its 1 or 3 input channels. Kernels that tile output channels in blocks of 4 or 8 spend most of
// their multiply-adds on padded channels there; this one holds every output channel.
//
// out[n, co, oh, ow0 + j] = sum over (ci, kh, kw) of W[co, ci, kh, kw] * X[n, ci, oh + kh - pad, ow0 + j + kw - pad]
//
// An invocation owns a strip of 4 output pixels along a row (ow0 = 4 s), a chunk of TR output
// rows (wid.z) and every output channel: TR x Cout vec4 accumulators. It loops over the input
// channels; for each, it reads the TR + kH - 1 input rows under the chunk one at a time, and adds
// each into the accumulators of the output rows whose window holds it.
//
// Loads are what cost on the software adapters: one whose index is not a constant is a load per
// lane there (docs/environment.md#speed-on-lavapipe), while a subgroup shuffle is a register
// move. So the lanes of a subgroup (L of them, the adapter's fixed subgroup size; lane l is
// local invocation l mod L, as on both software adapters) share their loads:
// - Lanes run along a row: the row's strips are laid out LPR lanes apart (LPR a multiple of L,
//   and of at least the strips of the output and of the input row), so a subgroup never holds
//   two rows. Each lane reads only its own 4 input columns, ow0 .. ow0 + 3 (a vec4 where XV is
//   vec4<f32>, else 4 values; columns past the map read as zero), and takes the columns left and
//   right of them, which its window also covers, from its neighbours with subgroupShuffleUp and
//   Down. Where a row takes more than one subgroup (LPR > L, EXTRA), lane 0 also reads the 4
//   columns to its left and lane L - 1 those to its right, whose owners sit in another subgroup.
// - The weights are the same in every lane: lanes 0 to L-1 each load one of a channel's
//   Cout x kH x kW weights and pass them on with subgroupBroadcast, ceil(9 Cout / L) loads a
//   channel instead of 9 Cout.
// Both need uniform control flow, hence no early return: lanes past the map or the batch
// compute on clamped addresses and store nothing.
//
// Params: the geometry, perChunk (TR, also unrolled into the generated code), lanesPerRow (LPR).
// Bindings: Wt (the weight, [Cout, Cin, kH, kW], or its flipped [Cin, Cout, kH, kW] form), X -> Out.
// Defines: XV, OV (f32 or vec4<f32>); code: SETUP, BODY, STORE.

#interface

@compute @workgroup_size(64)
fn narrow(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let live = gid.x / p.lanesPerRow < p.N;
  let n = min(gid.x / p.lanesPerRow, p.N - 1u);
  let s = gid.x % p.lanesPerRow;
  let ow0 = s * 4u;
  let oh0 = gid.z * p.perChunk;
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
  let image = n * p.Cin * plane;
  let outImage = n * p.Cout * oplane;
{{SETUP}}
  for (var ci = 0u; ci < p.Cin; ci++) {
    let chan = image + ci * plane;
{{BODY}}
  }
{{STORE}}
}
