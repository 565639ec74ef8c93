enable subgroups;
// Weight gradient of a conv for adapters with fixed subgroups of L = 8 (lavapipe) or 4 lanes,
// reading vec4-aligned dY and X (X where its rows allow, else a zero-padded copy; below);
// declared in engine/ops/conv-subgroup.ts, which generates the unrolled parts (code defines)
// and makes the copies (shaders/conv-weightgrad-pad.wgsl).
//
//   dW[co, ci, kh, kw] = sum over (n, oh, ow) of dY[n, co, oh, ow] * X[n, ci, oh*s + kh - pad, ow*s + kw - pad]
//
// Why: the lane mapping is conv-subgroup-weightgrad.wgsl's (lanes along input channels, the
// R x PX values of dY a step needs loaded once per subgroup and handed around with
// subgroupBroadcast), but there every input value is a separate load with bounds selects, and
// llvmpipe runs each load whose address differs per lane as a scalar loop over the lanes (a
// vec4 load is one loop for four values). Here every step's input row starts on a vec4 (PX and
// PX * STRIDE are multiples of 4), so it is ceil(NS / 4) vec4 loads, and dY's R x PX values
// R x PX / 4 vec4 loads shared by the lanes. And the window's rows are not all reloaded: the
// output rows of one image and one step of PX columns are the inner loop, and the window's last
// KH - STRIDE rows stay in registers as the next one's first rows, so a step loads STRIDE new
// input rows instead of KH (a stride-2 3x3 step 2 rows instead of 3; stride 1, 1 instead of 3).
// A kernel that reloaded all KH rows from padded copies ran 1.1-2.2x slower at stride 1 and
// 1.5-2x at stride 2 (engine/ops/conv.ts, weightGradRule) and was retired.
//
// The sum over images is split into chunks of `imagesPerChunk` images (workgroup wid.z), each
// written to its own slice of Out ([chunks][Cout][Cin][kH][kW]); the caller adds the slices.
//
// dY is dY itself where OW is a whole number of steps, else a copy [N * Cout][OH][OWp] with its
// rows padded to OWp. X is either X itself (Hp = H, Wp = W, top = left = pad), where every
// window row starts at the same lane of a vec4 at every step (X's planes and STRIDE of its rows
// whole vec4s): then the loads are masked to X's rows and columns (the same for every lane); or
// a copy [N * Cin][Hp][Wp] shifted down and right by pad, zeros where X does not reach, Hp and
// Wp (a multiple of 4) covering every row and column a step reads (top = left = 0). The code
// reads window row kh from lane lead(kh) of its first vec4 (0 on the copy).
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad), imagesPerChunk, Hp,
// Wp, OWp, top, left. Bindings: dYp, Xp (vec4) -> Out. Defines: R, PX, KH, KW, STRIDE, WG
// (workgroup size, a multiple of L); code: DYOFF (per-lane dY offsets), ACC (accumulators),
// FIRST (the carried rows of the first window of a column of steps), BODY (one step: the new
// rows, the multiply-adds, the carry), STORE.

// The interface generated from the declaration goes here:
#interface

const KK: u32 = KH * KW;

@compute @workgroup_size(WG)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
  // Lanes past the last channel compute a copy of it (no divergent exit) and store nothing.
  let ci = min(gid.x, p.Cin - 1u);
  let co0 = wid.y * R;
  let n0 = wid.z * p.imagesPerChunk;
  let n1 = min(n0 + p.imagesPerChunk, p.N);
  let dyPlane = p.OH * p.OWp / 4u;
  let dyRowStride = p.OWp / 4u;
{{DYOFF}}
{{ACC}}
  for (var n = n0; n < n1; n++) {
    let xPlane = (n * p.Cin + ci) * p.Hp * p.Wp;
    let dyImage = n * p.Cout * dyPlane;
    for (var ow0 = 0u; ow0 < p.OW; ow0 += PX) {
      // The element under the window's top-left corner (wrapping below 0 where that lies above
      // or left of X: only masked loads use it then), its input row and column.
      var xe = xPlane + ow0 * STRIDE - p.top * p.Wp - p.left;
      var ih = -i32(p.top);
      let iw0 = i32(ow0 * STRIDE) - i32(p.left);
      var dyStep = dyImage + ow0 / 4u;
{{FIRST}}
      for (var oh = 0u; oh < p.OH; oh++) {
{{BODY}}
        xe += STRIDE * p.Wp;
        ih += i32(STRIDE);
        dyStep += dyRowStride;
      }
    }
  }

  if (gid.x >= p.Cin) { return; }
  let slice = wid.z * p.Cout * p.Cin * KK;
{{STORE}}
}
