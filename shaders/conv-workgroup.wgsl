// Convolution as an implicit GEMM with tiles staged in workgroup memory: the usual design for
// real GPUs, where workgroup memory is fast and shared by the invocations of a workgroup. (On
// lavapipe it is the slow one: there every workgroup-memory access and barrier is scalar code;
// engine/tuning.ts measures and picks.) Declared in engine/ops/conv.ts.
//
//   C[m, n] = sum over k of A[m, k] * B[k, n], with A and B never materialized:
//   OP 0 forward       C = Y[img, co, oh, ow]  m = co  n = (img, oh, ow)  k = (ci, kh, kw)  A = W, B = X under the windows
//   OP 1 forward, the stride-1 input gradient: A is the weight of the conv whose input gradient
//        this is, read transposed and rotated by 180 degrees (as in conv.wgsl's FLIPPED)
//   OP 2 weight grad   C = dW[co, ci, kh, kw]  m = co  n = (ci, kh, kw)  k = (img, oh, ow)  A = dY, B = X under the windows
//
// The workgroup (WG_M x WG_N invocations) owns a (TM * WG_M) x (TN * WG_N) tile of C; per step
// of TK values of k, its invocations copy the A and B tiles into workgroup memory together, wait,
// and each multiplies its TM x TN block out of them. Out-of-range elements load as 0.
//
// Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad). Bindings: In0 (A's
// tensor), In1 (B's tensor) -> Out. Defines: OP, WG_M, WG_N, TM, TN, TK.

// The interface generated from the declaration goes here:
#interface

const BM: u32 = TM * WG_M;                  // tile rows
const BN: u32 = TN * WG_N;                  // tile columns
const THREADS: u32 = WG_M * WG_N;

var<workgroup> As: array<f32, TK * BM>;    // [k][m]
var<workgroup> Bs: array<f32, TK * BN>;    // [k][n]

fn dims() -> vec3<u32> {                     // M, N, K of the GEMM
  let kk = p.kH * p.kW;
  if (OP == 2u) { return vec3<u32>(p.Cout, p.Cin * kk, p.N * p.OH * p.OW); }
  return vec3<u32>(p.Cout, p.N * p.OH * p.OW, p.Cin * kk);
}

// X under the window: image `img`, channel ci, output pixel (oh, ow), tap (kh, kw); 0 in the padding.
fn loadX(img: u32, ci: u32, oh: u32, ow: u32, kh: u32, kw: u32) -> f32 {
  let ih = i32(oh * p.stride + kh) - i32(p.pad);
  let iw = i32(ow * p.stride + kw) - i32(p.pad);
  let inside = ih >= 0 && iw >= 0 && ih < i32(p.H) && iw < i32(p.W);
  let v = In1[select(0u, ((img * p.Cin + ci) * p.H + u32(ih)) * p.W + u32(iw), inside)];
  return select(0.0, v, inside);
}

fn loadA(m: u32, k: u32, d: vec3<u32>) -> f32 {
  if (m >= d.x || k >= d.z) { return 0.0; }
  let kk = p.kH * p.kW;
  if (OP == 0u) { return In0[m * d.z + k]; }
  if (OP == 1u) {
    let ci = k / kk;
    let tap = k % kk;
    return In0[(ci * p.Cout + m) * kk + (kk - 1u - tap)];
  }
  let oplane = p.OH * p.OW;
  let img = k / oplane;
  return In0[(img * p.Cout + m) * oplane + k % oplane];
}

fn loadB(k: u32, n: u32, d: vec3<u32>) -> f32 {
  if (k >= d.z || n >= d.y) { return 0.0; }
  let kk = p.kH * p.kW;
  let oplane = p.OH * p.OW;
  if (OP == 2u) {
    let img = k / oplane;
    let q = k % oplane;
    let tap = n % kk;
    return loadX(img, n / kk, q / p.OW, q % p.OW, tap / p.kW, tap % p.kW);
  }
  let img = n / oplane;
  let q = n % oplane;
  let tap = k % kk;
  return loadX(img, k / kk, q / p.OW, q % p.OW, tap / p.kW, tap % p.kW);
}

@compute @workgroup_size(WG_N, WG_M)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let d = dims();
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let t = lid.y * WG_N + lid.x;
  var acc: array<array<f32, TN>, TM>;
  for (var k0 = 0u; k0 < d.z; k0 += TK) {
    for (var i = t; i < TK * BM; i += THREADS) {
      As[i] = loadA(m0 + i % BM, k0 + i / BM, d);
    }
    for (var i = t; i < TK * BN; i += THREADS) {
      Bs[i] = loadB(k0 + i / BN, n0 + i % BN, d);
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, TM>;
      for (var i = 0u; i < TM; i++) { a[i] = As[k * BM + lid.y * TM + i]; }
      for (var j = 0u; j < TN; j++) {
        let b = Bs[k * BN + lid.x * TN + j];
        for (var i = 0u; i < TM; i++) { acc[i][j] += a[i] * b; }
      }
    }
    workgroupBarrier();
  }

  let oplane = p.OH * p.OW;
  for (var i = 0u; i < TM; i++) {
    let m = m0 + lid.y * TM + i;
    if (m >= d.x) { break; }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + lid.x * TN + j;
      if (n >= d.y) { break; }
      if (OP == 2u) {
        Out[m * d.y + n] = acc[i][j];
      } else {
        let img = n / oplane;
        Out[(img * p.Cout + m) * oplane + n % oplane] = acc[i][j];
      }
    }
  }
}
