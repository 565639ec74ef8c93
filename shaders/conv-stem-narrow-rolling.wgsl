enable subgroups;
// The narrow forward (shaders/conv-stem-narrow.wgsl: at most 4 output channels, stride 1, above
// all a stem's input gradient, 16 -> 1) walking down the whole map, a block of CB input channels
// at a time (engine/ops/conv-stem.ts generates SETUP, BLOCK, BODY, FLUSH). The lanes lie along a
// row as in the narrow kernel (a lane reads its own 4 input columns, its neighbours' edge columns
// come by subgroupShuffleUp/Down, LPR lanes a row), but an invocation owns the strip's whole
// column of the map: for each block (BLOCK: its CB x Cout x kH x kW weights, lane-wise loads and
// subgroupBroadcast) it reads each input row of the block's channels once, in order (BODY: the
// channels unrolled), and adds it into kH rolling vec4 accumulators per output channel, those of
// the output rows whose window holds that row. When an input row is done, the oldest output row
// is complete: the first block stores it, the others add it to the stored row (read back from
// cache: the strip's column of the map is a few KB), and the accumulators move up one row (FLUSH
// stores the rows left after the last input row). Against the chunked narrow kernel, which
// rereads kH - 1 input rows for every chunk of rows, it loads each input value once.
//
// Why blocks: the whole map's input rows of 16 channels at once (one loop turn reading 16 rows)
// made lavapipe's code 1.3x slower than the chunked kernel, while 4 or 8 channels a turn ran at
// 0.53-0.64 of its time (docs/environment.md#speed-on-lavapipe).
//
// out[n, co, oh, ow0 + j] = sum over (ci, kh, kw) of W[co, ci, kh, kw] * X[n, ci, oh + kh - pad, ow0 + j + kw - pad]
//
// Input row ih feeds output rows ih + pad - kh; the walk runs over the input rows, all in the
// map, so it needs pad <= kH - 1 (always so for a stride-1 input gradient: its padding is
// kH - 1 - the forward's). Channels past Cin in the last block read a clamped channel with zero
// weights. Lanes past the map or the batch compute on clamped addresses and store nothing (the
// shuffles need uniform control flow).
//
// Params: the geometry, perChunk (= CB), lanesPerRow (LPR).
// Bindings: Wt (the weight, [Cout, Cin, kH, kW], or its flipped [Cin, Cout, kH, kW] form), X -> Out.
// Defines: CB; XV, OV (f32 or vec4<f32>); code: SETUP, BLOCK, BODY, FLUSH.

#interface

@compute @workgroup_size(64)
fn narrowRolling(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let live = gid.x / p.lanesPerRow < p.N;
  let n = min(gid.x / p.lanesPerRow, p.N - 1u);
  let s = gid.x % p.lanesPerRow;
  let ow0 = s * 4u;
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;
  let image = n * p.Cin * plane;
  let outImage = n * p.Cout * oplane;
{{SETUP}}
  for (var cb = 0u; cb < p.Cin; cb += CB) {
{{BLOCK}}
    for (var ih = 0u; ih < p.H; ih++) {
      let rOff = ih * p.W;
{{BODY}}
    }
{{FLUSH}}
  }
}
