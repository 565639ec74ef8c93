// Batched matmul C[b] = op(A[b]) x op(B[b]), op = identity or transpose, all row-major.
//
// Register tiling without workgroup memory (the fastest design on lavapipe, see
// docs/environment.md#speed-on-lavapipe): each invocation owns a TM x TN block of C held in
// TM * TN / 4 vec4 accumulators and walks the whole K dimension, loading one TM-row column of
// op(A) and one TN-wide row of op(B) per step. Edge blocks clamp their load indices into the
// matrix instead of branching, and skip the stores that fall outside. In the 'subgroup' design
// (engine/ops/matmul.ts) the lanes of a subgroup share the tile's rows: each loads one of them
// and passes it to the others with subgroupBroadcast.
//
// The per-row and per-column work is unrolled in engine/ops/matmul.ts into the code defines,
// with one named variable per accumulator, never a private array indexed in a loop: SwiftShader
// (Chromium's software adapter) keeps such arrays in memory and gathers every element lane by
// lane, which made this kernel 5-10x slower there; lavapipe unrolls the loops itself.
//
// Declared in engine/ops/matmul.ts. Params: M, N, K and the batch strides of A, B and C (0
// broadcasts one matrix over the batch). Bindings: A, B -> C; B's element type BElem is
// vec4<f32> when B is read as vec4s (see MatmulLayout in engine/ops/matmul.ts), else f32; A's
// AElem likewise.
// Defines: TM, TN (the tile), WG_X, WG_Y (the workgroup), KSTEP (k per loop step: 1, or 4 when
// K % 4 == 0, for the 'k4' design), and the unrolled code:
//   INPUTS the entry point's builtins (the subgroup design adds the lane's index)
//   SETUP  the exit of invocations past the matrix, clamped base indices of the tile's rows of
//          A and columns of B, loop-invariant strides
//   ACC    the accumulators
//   BODY   one loop step: loads of op(A) and op(B), KSTEP * TM * TN / 4 vec4 multiply-adds
//   STORE  the in-range outputs

// The interface generated from that declaration (struct Params, bindings, the defines) goes here:
#interface

@compute @workgroup_size(WG_X, WG_Y)
fn main({{INPUTS}}) {
  let col0 = gid.x * TN;
  let row0 = gid.y * TM;
  let baseA = gid.z * p.batchStrideA;
  let baseB = gid.z * p.batchStrideB;
  let baseC = gid.z * p.batchStrideC;
{{SETUP}}
{{ACC}}
  for (var k = 0u; k < p.K; k += KSTEP) {
{{BODY}}
  }
{{STORE}}
}
