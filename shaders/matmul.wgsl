// Batched matmul C[b] = op(A[b]) x op(B[b]), op = identity or transpose, all row-major.
//
// Register tiling without workgroup memory (the fastest design on lavapipe, see
// docs/environment.md#speed-on-lavapipe): each invocation owns an 8x8 block of C held in 16 vec4 accumulators and
// walks the whole K dimension, loading one 8-row column of op(A) and one 8-wide row of op(B)
// per step. Edge blocks clamp their load indices into the matrix instead of branching, and
// skip the stores that fall outside.
//
// Declared in engine/ops/matmul.ts. Params: M, N, K and the batch strides of A, B and C (0
// broadcasts one matrix over the batch). Bindings: A, B -> C. Defines:
//   TRANS_A  A is stored [K, M]
//   TRANS_B  B is stored [N, K]
//   B_VEC4   B is not transposed and N % 4 == 0: B is read as rows of aligned vec4s; BElem, B's
//            element type, is vec4<f32> then and f32 otherwise.

// The interface generated from that declaration (struct Params, bindings, the defines) goes here:
#interface

fn loadA(base: u32, row: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[base + k * p.M + row]; }
  return A[base + row * p.K + k];
}

// One element of B in the scalar layout. vec4<f32>(v) is v for a vec4 and a splat for an f32, so
// this and loadB4 type-check for either BElem; the const branches keep only one path.
fn loadB(i: u32) -> f32 {
  return vec4<f32>(B[i]).x;
}

// Four columns of op(B) at depth k. With B_VEC4 each 4-column group is one aligned vec4; a
// group that starts past the last column is clamped to the last group (its results are not
// stored).
fn loadB4(base: u32, k: u32, col0: u32, cols: vec4<u32>) -> vec4<f32> {
  if (B_VEC4) {
    return vec4<f32>(B[(base + k * p.N + min(col0, p.N - 4u)) / 4u]);
  }
  if (TRANS_B) {
    return vec4<f32>(loadB(base + cols.x * p.K + k), loadB(base + cols.y * p.K + k), loadB(base + cols.z * p.K + k), loadB(base + cols.w * p.K + k));
  }
  let row = base + k * p.N;
  return vec4<f32>(loadB(row + cols.x), loadB(row + cols.y), loadB(row + cols.z), loadB(row + cols.w));
}

@compute @workgroup_size(16, 4)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col0 = gid.x * 8u;
  let row0 = gid.y * 8u;
  if (col0 >= p.N || row0 >= p.M) { return; }
  let baseA = gid.z * p.batchStrideA;
  let baseB = gid.z * p.batchStrideB;
  let baseC = gid.z * p.batchStrideC;

  var rows: array<u32, 8>;
  for (var r = 0u; r < 8u; r++) { rows[r] = min(row0 + r, p.M - 1u); }
  // Column indices of the two vec4 halves, clamped like the rows.
  let colsLo = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.N - 1u));
  let colsHi = min(vec4<u32>(col0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.N - 1u));

  var acc: array<vec4<f32>, 16>;
  for (var k = 0u; k < p.K; k++) {
    let b0 = loadB4(baseB, k, col0, colsLo);
    let b1 = loadB4(baseB, k, col0 + 4u, colsHi);
    for (var r = 0u; r < 8u; r++) {
      let a = loadA(baseA, rows[r], k);
      acc[2u * r] += a * b0;
      acc[2u * r + 1u] += a * b1;
    }
  }

  for (var r = 0u; r < 8u; r++) {
    let row = row0 + r;
    if (row >= p.M) { break; }
    let o = baseC + row * p.N;
    for (var c = 0u; c < 4u; c++) {
      if (col0 + c < p.N) { C[o + col0 + c] = acc[2u * r][c]; }
      if (col0 + 4u + c < p.N) { C[o + col0 + 4u + c] = acc[2u * r + 1u][c]; }
    }
  }
}
