// Batched matmul C[b] = op(A[b]) x op(B[b]), op = identity or transpose, all row-major.
//
// Register tiling without workgroup memory (the fastest design on lavapipe, see
// ENVIRONMENT.md): each invocation owns an 8x8 block of C held in 16 vec4 accumulators and
// walks the whole K dimension, loading one 8-row column of op(A) and one 8-wide row of op(B)
// per step. Edge blocks clamp their load indices into the matrix instead of branching, and
// skip the stores that fall outside.
//
// Template: {{TRANS_A}} (A stored [K, M]), {{TRANS_B}} (B stored [N, K]),
//           {{B_VEC4}} (B not transposed and N % 4 == 0: B rows are read as vec4).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  _pad: u32,
  batchStrideA: u32,   // 0 broadcasts one matrix over the batch
  batchStrideB: u32,
  batchStrideC: u32,
  _pad2: u32,
}

const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};
const B_VEC4: bool = {{B_VEC4}};

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<{{B_TYPE}}>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn loadA(base: u32, row: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[base + k * p.M + row]; }
  return A[base + row * p.K + k];
}

{{LOAD_B}}

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
