// Every s-th pixel of every s-th row of X, packed: the compact input the pointwise weight
// gradient (conv-pointwise-weightgrad.wgsl) reads at a stride above 1; declared in
// engine/ops/conv-pointwise.ts, which generates the unrolled row (code define).
//
//   Out[plane][oh][ow] = X[plane][oh*s][ow*s]   for ow < OW; Out's rows are OWC = OW rounded
//   up to 4 wide, the columns past OW hold whatever the clamped loads read (never used).
//
// Read strided, X cost the GEMM more per float (the same loads touch twice the cache lines, and
// ResNet-18's 4 KB planes presumably share L1 sets): 1.2-1.4x the time of this pass plus the
// GEMM on the packed copy for ResNet-18's 64->128 32x32 shortcut at batch 32. This pass reads
// X row by row, as vec4s where every used input row starts on one (XV = vec4: H W and s W
// multiples of 4), and stores vec4s. ROWS output rows an invocation, consecutive in the flat
// [planes * OH] list of rows.
//
// Params: rows (planes * OH), OH, H, W, last (X's last element, or vec4, for the clamps).
// Bindings: X (XV) -> Out (vec4). Defines: ROWS, OWC, STRIDE, XV; code: BODY (one row from its
// input start `b`, in X's elements, and its first output vec4 `o`).

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(64)
fn subsample(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r0 = (gid.x + gid.y * nwg.x * 64u) * ROWS;
  let r1 = min(r0 + ROWS, p.rows);
  for (var r = r0; r < r1; r++) {
    let plane = r / p.OH;
    let b = plane * p.H * p.W + (r % p.OH) * STRIDE * p.W;
    let o = r * (OWC / 4u);
{{BODY}}
  }
}
