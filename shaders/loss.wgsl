// Losses and metrics: cosine similarity along one dimension, softmax cross-entropy with integer
// labels, top-1 correctness.
//
// Rows: a tensor reduced along dimension `dim` is viewed as [outer, D, inner]; row r (of
// rows = outer * inner) starts at (r / inner) * D * inner + r % inner and steps by `inner`.
//
// Entry points and their bindings (inputs, then outputs):
//   cosineForward     A, B, COS               one workgroup per row, three accumulators
//   cosineBackwardA   A, B, G, GA             gradient for A only (stop-gradient on B)
//   cosineBackwardAB  A, B, G, GA, GB
//   ceForward         X[N,K], LABELS, LOSS    one invocation per row, max-shifted log-sum-exp
//   ceBackward        X, LABELS, G, GX
//   top1              X, LABELS, HIT          1.0 where the first arg-max equals the label
//
// Cosine: cos = a.b / (max(|a|, eps) * max(|b|, eps)) (PyTorch's cosine_similarity; eps 1e-8).
//   d cos / da = b / (na nb) - cos * a / (na |a|), with na = max(|a|, eps) (the second term is
//   0 when a = 0).
// Cross-entropy: loss = log(sum_k exp(x_k - m)) + m - x_label, m = max_k x_k;
//   d loss / dx_k = softmax_k - [k == label]. Labels outside [0, K) give loss 0 and gradient 0.

// The interface generated from the declaration in engine/ops/loss.ts (struct Params: rows, D,
// inner, eps; each entry point's bindings) goes here:
#interface

const WG: u32 = 64u;

fn rowStart(r: u32, D: u32, inner: u32) -> u32 {
  return (r / inner) * D * inner + r % inner;
}

fn negInf() -> f32 { let b = 0xff800000u; return bitcast<f32>(b); }

// ---- cosine similarity -----------------------------------------------------------------------

var<workgroup> sAB: array<f32, 64>;
var<workgroup> sAA: array<f32, 64>;
var<workgroup> sBB: array<f32, 64>;

struct Dots {
  ab: f32,
  aa: f32,
  bb: f32,
}

// a.b, |a|^2, |b|^2 of one row: strided partial sums, then a tree (uniform control flow).
fn rowDots(lid: u32, start: u32, D: u32, inner: u32) -> Dots {
  var ab = 0.0;
  var aa = 0.0;
  var bb = 0.0;
  for (var k = lid; k < D; k += WG) {
    let a = cA[start + k * inner];
    let b = cB[start + k * inner];
    ab += a * b;
    aa += a * a;
    bb += b * b;
  }
  sAB[lid] = ab;
  sAA[lid] = aa;
  sBB[lid] = bb;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (lid < half) {
      sAB[lid] += sAB[lid + half];
      sAA[lid] += sAA[lid + half];
      sBB[lid] += sBB[lid + half];
    }
    workgroupBarrier();
  }
  let d = Dots(sAB[0], sAA[0], sBB[0]);
  workgroupBarrier();
  return d;
}

@compute @workgroup_size(64)
fn cosineForward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let d = rowDots(lid.x, rowStart(r, p.D, p.inner), p.D, p.inner);
  if (lid.x == 0u) {
    cCos[r] = d.ab / (max(sqrt(d.aa), p.eps) * max(sqrt(d.bb), p.eps));
  }
}

struct CosGrad {
  ka: f32,   // coefficient of b in dA (and of a in dB): g / (na nb)
  ca: f32,   // coefficient of a in dA: -g cos / (na |a|)
  cb: f32,   // coefficient of b in dB: -g cos / (nb |b|)
}

fn cosGrad(d: Dots, g: f32, eps: f32) -> CosGrad {
  let la = sqrt(d.aa);
  let lb = sqrt(d.bb);
  let na = max(la, eps);
  let nb = max(lb, eps);
  let c = d.ab / (na * nb);
  return CosGrad(g / (na * nb), select(-g * c / (na * la), 0.0, la == 0.0), select(-g * c / (nb * lb), 0.0, lb == 0.0));
}

@compute @workgroup_size(64)
fn cosineBackwardA(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let start = rowStart(r, p.D, p.inner);
  let k = cosGrad(rowDots(lid.x, start, p.D, p.inner), cG[r], p.eps);
  for (var j = lid.x; j < p.D; j += WG) {
    let i = start + j * p.inner;
    cGA[i] = k.ka * cB[i] + k.ca * cA[i];
  }
}

@compute @workgroup_size(64)
fn cosineBackwardAB(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let start = rowStart(r, p.D, p.inner);
  let k = cosGrad(rowDots(lid.x, start, p.D, p.inner), cG[r], p.eps);
  for (var j = lid.x; j < p.D; j += WG) {
    let i = start + j * p.inner;
    let a = cA[i];
    let b = cB[i];
    cGA[i] = k.ka * b + k.ca * a;
    cGB[i] = k.ka * a + k.cb * b;
  }
}

// ---- cross-entropy and top-1 -----------------------------------------------------------------

struct RowStats {
  m: f32,     // max logit
  lse: f32,   // log(sum exp(x - m))
}

fn rowStats(start: u32, K: u32) -> RowStats {
  var m = negInf();
  for (var k = 0u; k < K; k++) { m = max(m, eX[start + k]); }
  var s = 0.0;
  for (var k = 0u; k < K; k++) { s += exp(eX[start + k] - m); }
  return RowStats(m, log(s));
}

fn labelOf(r: u32, K: u32) -> i32 {
  let y = eLabels[r];
  return select(-1, y, y >= 0 && y < i32(K));
}

@compute @workgroup_size(64)
fn ceForward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let K = p.D;
  let start = r * K;
  let y = labelOf(r, K);
  if (y < 0) { eLoss[r] = 0.0; return; }
  let st = rowStats(start, K);
  eLoss[r] = st.lse + st.m - eX[start + u32(y)];
}

@compute @workgroup_size(64)
fn ceBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let K = p.D;
  let start = r * K;
  let y = labelOf(r, K);
  let g = select(eG[r], 0.0, y < 0);
  let st = rowStats(start, K);
  for (var k = 0u; k < K; k++) {
    let prob = exp(eX[start + k] - st.m - st.lse);
    eGX[start + k] = g * (prob - select(0.0, 1.0, i32(k) == y));
  }
}

@compute @workgroup_size(64)
fn top1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let K = p.D;
  let start = r * K;
  var best = 0u;
  var m = negInf();
  for (var k = 0u; k < K; k++) {
    let v = eX[start + k];
    if (v > m) { m = v; best = k; }
  }
  eHit[r] = select(0.0, 1.0, i32(best) == eLabels[r]);
}
