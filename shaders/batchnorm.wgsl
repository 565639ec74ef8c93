// Batch normalization over (N, C, S...) tensors, S = H*W for 2-D inputs and 1 for (N, C), and
// the ops that follow it in a ResNet, fused into the same passes: an optional residual added
// after the affine transform, an optional ReLU, and optionally the activation range observer or
// fake quantization that comes next (declared in engine/ops/batchnorm.ts). Element (n, c, s)
// lives at n*C*HW + c*HW + s. Per-channel statistics are packed in one buffer
// Stats[4C] = [mean | invstd | scale | shift], scale = gamma*invstd, shift = beta - mean*scale.
//
//   pre = x*scale + shift (+ residual)      v = max(pre, 0) with RELU, else pre
//   y   = v, or fake-quant(v) (ACT 2), and with ACT 1 the observer records min/max of v
//   backward: g' = dy, zero where the ReLU cut (pre <= 0) or the quantizer clamped (ACT 2:
//   straight-through), then the usual batch-norm backward of g'; the residual's gradient is g'.
//
// Tensors are bound as vec4 arrays and walked four elements ("a unit") at a time. With VEC4
// (HW % 4 == 0) a unit is one aligned vec4 inside one channel's run; otherwise its four elements
// are read one by one, and may belong to different channels (element-wise passes) or different
// rows n (per-channel passes). Pool buffers are whole multiples of 64 bytes, so the last vec4
// exists; lanes past the tensor are masked out of sums, min/max and stores.
//
// Entry points (docs/environment.md#speed-on-lavapipe: several vec4 per invocation, no
// workgroup memory inside loops; per-channel sums are split over many invocations, then a tiny
// pass folds the parts):
//   statsPartial     training: invocation i = part*C + c sums (x - k) and (x - k)^2 over one
//                    part of channel c (k = the channel's first element, a shift that keeps
//                    the f32 variance accurate when |mean| >> std) into SPart[i].
//   statsFinal       one invocation per channel: folds the parts, writes Stats, updates the
//                    running mean/var (unbiased) and num_batches_tracked in place.
//   evalStats        eval: Stats from the running statistics.
//   normalize        one pass over a chunk of an (n, c) row (VEC4, ROWS) or PER units in flat
//                    order: y = v; with ACT 1 also the min/max of v into the observer's state
//                    (per invocation, then an atomicMax per bound where it raises the stored
//                    one); with ACT 2 y = fake-quant(v) with the observer's range.
//   backwardPartial  per part of a channel: sum(g') and sum(g' * xhat) into BPart (dbeta and
//                    dgamma once folded); with RESIDUAL also g' (the residual's gradient) to DR.
//   backwardFinal    folds the parts into DGammaOut, DBetaOut.
//   backwardInput    dx = scale*(g' - (dbeta + xhat*dgamma)/M) in training, scale*g' in eval;
//                    g' recomputed from dy, or read as it is (MASKED: dy is DR already).

// The interface generated from the declaration in engine/ops/batchnorm.ts (struct Params: the
// sizes, flags, hyper-parameters and the part split; each entry point's bindings; the defines
// VEC4, ROWS, COLS, RELU, RESIDUAL, ACT, MASKED) goes here:
#interface

const WG: u32 = 256u;
const WG_PART: u32 = 64u;
const PER: u32 = 8u;
const TRAINING: u32 = 2u;
const UPDATE: u32 = 4u;

// ---- per-channel passes ----

// Where unit u of channel c starts: row n, position s in the row (elements), and the element
// address of its first lane.
struct ChanPos {
  n: u32,
  s: u32,
}

fn chanStart(u: u32) -> ChanPos {
  let t = 4u * u;
  let n = t / p.HW;
  return ChanPos(n, t - n * p.HW);
}

fn chanNext(q: ChanPos) -> ChanPos {
  var r = q;
  r.s += 4u;
  while (r.s >= p.HW) { r.s -= p.HW; r.n += 1u; }
  return r;
}

const LANE = vec4<u32>(0u, 1u, 2u, 3u);

// Element addresses of the unit's four lanes in channel c (H*W < 4: VEC4 and ROWS take the
// other sizes; a unit may span several rows).
fn chanAddr4(q: ChanPos, c: u32) -> vec4<u32> {
  var out: vec4<u32>;
  for (var k = 0u; k < 4u; k++) {
    var s = q.s + k;
    var n = q.n;
    while (s >= p.HW) { s -= p.HW; n += 1u; }
    out[k] = (n * p.C + c) * p.HW + s;
  }
  return out;
}

// Lanes of the unit that lie inside the channel (M elements).
fn liveLanes(u: u32) -> vec4<bool> {
  let t = 4u * u;
  return vec4<u32>(t, t + 1u, t + 2u, t + 3u) < vec4<u32>(p.M);
}

fn loadX4(at: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(X[at.x / 4u][at.x % 4u], X[at.y / 4u][at.y % 4u], X[at.z / 4u][at.z % 4u], X[at.w / 4u][at.w % 4u]);
}

fn loadDY4(at: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(DY[at.x / 4u][at.x % 4u], DY[at.y / 4u][at.y % 4u], DY[at.z / 4u][at.z % 4u], DY[at.w / 4u][at.w % 4u]);
}

fn loadR4(at: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(R[at.x / 4u][at.x % 4u], R[at.y / 4u][at.y % 4u], R[at.z / 4u][at.z % 4u], R[at.w / 4u][at.w % 4u]);
}

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

struct Part {
  c: u32,
  begin: u32, // units
  end: u32,
}

// Part i of channel i % C: a range of vec4 units of the channel, or with ROWS of rows n.
fn partOf(i: u32) -> Part {
  let c = i % p.C;
  let begin = (i / p.C) * p.L;
  let span = select((p.M + 3u) / 4u, p.N, ROWS);
  return Part(c, begin, min(begin + p.L, span));
}

// ROWS (H*W >= 4, not a multiple of 4): a channel's row n is HW contiguous elements from e0,
// walked as the aligned vec4 units that cover it, the lanes outside it masked. One vec4 load a
// unit instead of four scalar ones; the row's first and last units are shared with neighbours.
fn rowFirstUnit(e0: u32) -> u32 {
  return e0 / 4u;
}

fn rowEndUnit(e0: u32) -> u32 {
  return (e0 + p.HW + 3u) / 4u;
}

fn rowLanes(j: u32, e0: u32) -> vec4<bool> {
  let e = vec4<u32>(4u * j) + LANE;
  return (e >= vec4<u32>(e0)) & (e < vec4<u32>(e0 + p.HW));
}

// VEC4: a part's units [begin, end) of its channel, walked as runs inside one row n each (whole
// vec4s, every lane live), so that the loop over a run is a load and the sums, with no per-unit
// row bookkeeping or masks:
//   var w = runWalk(part);
//   while (w.left > 0u) { let run = nextRun(&w, part.c); for (j in [run.first, run.first + run.count)) ... }
// `first` is the X/DY index of the run's first unit.
struct RowRun {
  first: u32,
  count: u32,
}

// Where the walk's next run starts, and how many of the part's units are left.
struct RunWalk {
  q: ChanPos,
  left: u32,
}

fn runWalk(part: Part) -> RunWalk {
  return RunWalk(chanStart(part.begin), select(0u, part.end - part.begin, part.end > part.begin));
}

// The next run of channel c (the rest of row q.n, or fewer units where the part ends there).
fn nextRun(w: ptr<function, RunWalk>, c: u32) -> RowRun {
  let q = (*w).q;
  let run = RowRun(((q.n * p.C + c) * p.HW + q.s) / 4u, min((*w).left, (p.HW - q.s) / 4u));
  (*w).left -= run.count;
  (*w).q = ChanPos(q.n + 1u, 0u);
  return run;
}

@compute @workgroup_size(WG_PART)
fn statsPartial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_PART;
  if (COLS) {
    if (i >= p.C / 4u * p.P) { return; }
    let cp = colPartOf(i);
    let k = X[cp.c4]; // row 0: each channel's shift
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    for (var n = cp.begin; n < cp.end; n++) {
      let d = X[n * (p.C / 4u) + cp.c4] - k;
      s1 += d;
      s2 += d * d;
    }
    for (var q = 0u; q < 4u; q++) { SPart[cp.part * p.C + 4u * cp.c4 + q] = vec2<f32>(s1[q], s2[q]); }
    return;
  }
  if (i >= p.C * p.P) { return; }
  let part = partOf(i);
  let k = X[part.c * p.HW / 4u][part.c * p.HW % 4u];
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  if (ROWS) {
    for (var n = part.begin; n < part.end; n++) {
      let e0 = (n * p.C + part.c) * p.HW;
      for (var j = rowFirstUnit(e0); j < rowEndUnit(e0); j++) {
        let d = select(vec4<f32>(0.0), X[j] - k, rowLanes(j, e0));
        a1 += d;
        a2 += d * d;
      }
    }
  } else if (VEC4) {
    var w = runWalk(part);
    while (w.left > 0u) {
      let run = nextRun(&w, part.c);
      for (var j = run.first; j < run.first + run.count; j++) {
        let d = X[j] - k;
        a1 += d;
        a2 += d * d;
      }
    }
  } else {
    var q = chanStart(part.begin);
    for (var u = part.begin; u < part.end; u++) {
      let d = select(vec4<f32>(0.0), loadX4(chanAddr4(q, part.c)) - k, liveLanes(u));
      a1 += d;
      a2 += d * d;
      q = chanNext(q);
    }
  }
  SPart[i] = vec2<f32>(hsum(a1), hsum(a2));
}

@compute @workgroup_size(64)
fn statsFinal(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.C) { return; }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var part = 0u; part < p.P; part++) {
    let v = FPart[part * p.C + c];
    s1 += v.x;
    s2 += v.y;
  }
  let k = X[c * p.HW / 4u][c * p.HW % 4u];
  let mean = k + s1 * p.invM;
  let variance = max((s2 - s1 * s1 * p.invM) * p.invM, 0.0);
  let invstd = 1.0 / sqrt(variance + p.eps);
  let scale = Gamma[c] * invstd;
  OutStats[c] = mean;
  OutStats[p.C + c] = invstd;
  OutStats[2u * p.C + c] = scale;
  OutStats[3u * p.C + c] = Beta[c] - mean * scale;
  if ((p.flags & UPDATE) != 0u) {
    RunMean[c] = (1.0 - p.momentum) * RunMean[c] + p.momentum * mean;
    RunVar[c] = (1.0 - p.momentum) * RunVar[c] + p.momentum * variance * p.unbias;
    if (c == 0u) { NumBatches[0] += 1; }
  }
}

@compute @workgroup_size(64)
fn evalStats(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let mean = ERunMean[c];
  let invstd = 1.0 / sqrt(ERunVar[c] + p.eps);
  let scale = EGamma[c] * invstd;
  EStats[c] = mean;
  EStats[p.C + c] = invstd;
  EStats[2u * p.C + c] = scale;
  EStats[3u * p.C + c] = EBeta[c] - mean * scale;
}

// ---- the masked gradient g' ----

// pre-activation, its ReLU, and g' for one unit (`a` from the observer, used with ACT 2).
fn maskedGrad(g: vec4<f32>, pre: vec4<f32>, a: ActParams) -> vec4<f32> {
  var gm = g;
  var v = pre;
  if (RELU) {
    gm = select(gm, vec4<f32>(0.0), pre <= vec4<f32>(0.0));
    v = max(pre, vec4<f32>(0.0));
  }
  if (ACT == 2u && !a.through) { gm = select(vec4<f32>(0.0), gm, insideAsym4(v, a, p.bits)); }
  return gm;
}

fn actOf() -> ActParams {
  if (ACT == 2u) { return actParams(QS[0], QS[1], p.bits); }
  return ActParams(1.0, 0.0, true);
}

// Per-channel values of a part's channel, read once.
// (vec4s: the same channel in every lane, or with COLS four channels, one a lane.)
struct ChanStats {
  mean: vec4<f32>,
  invstd: vec4<f32>,
  scale: vec4<f32>,
  shift: vec4<f32>,
}

fn chanStats(c: u32) -> ChanStats {
  return ChanStats(vec4<f32>(Stats[c]), vec4<f32>(Stats[p.C + c]), vec4<f32>(Stats[2u * p.C + c]), vec4<f32>(Stats[3u * p.C + c]));
}

// Channels 4*c4 .. 4*c4 + 3, one a lane (COLS).
fn stats4At(row: u32, c4: u32) -> vec4<f32> {
  let b = row * p.C + 4u * c4;
  return vec4<f32>(Stats[b], Stats[b + 1u], Stats[b + 2u], Stats[b + 3u]);
}

fn colStats(c4: u32) -> ChanStats {
  return ChanStats(stats4At(0u, c4), stats4At(1u, c4), stats4At(2u, c4), stats4At(3u, c4));
}

// COLS ([N, C] with C % 4 == 0, the projector's batch norm): an invocation takes four channels
// (one a lane, a vec4 of a row) over a part of the rows n; i = part * C/4 + c4.
struct ColPart {
  c4: u32,
  part: u32,
  begin: u32, // rows
  end: u32,
}

fn colPartOf(i: u32) -> ColPart {
  let quads = p.C / 4u;
  let part = i / quads;
  let begin = part * p.L;
  return ColPart(i % quads, part, begin, min(begin + p.L, p.N));
}

// g' of one unit (zero in lanes past the part) and g' * xhat, the two sums' terms; x is read
// once (SwiftShader does not merge two loads of it).
struct GradTerms {
  gm: vec4<f32>,
  gx: vec4<f32>,
}

fn gradTerms(x: vec4<f32>, dy: vec4<f32>, r: vec4<f32>, live: vec4<bool>, cs: ChanStats, a: ActParams) -> GradTerms {
  var pre = x * cs.scale + cs.shift;
  if (RESIDUAL) { pre += r; }
  let gm = select(vec4<f32>(0.0), maskedGrad(dy, pre, a), live);
  return GradTerms(gm, gm * ((x - cs.mean) * cs.invstd));
}

fn unitTerms(at: vec4<u32>, live: vec4<bool>, cs: ChanStats, a: ActParams) -> GradTerms {
  var r = vec4<f32>(0.0);
  if (RESIDUAL) { r = loadR4(at); }
  return gradTerms(loadX4(at), loadDY4(at), r, live, cs, a);
}

// Unit j of a row (ROWS, COLS): an aligned vec4.
fn rowTerms(j: u32, live: vec4<bool>, cs: ChanStats, a: ActParams) -> GradTerms {
  return gradTerms(X[j], DY[j], residualAt(j), live, cs, a);
}

// A row's first or last unit j (ROWS; partial: whether it is shared with the next row or the
// previous one): the terms of its lanes in the row, zero when it is a whole unit, which the
// row's loop takes.
fn rowEdgeTerms(j: u32, e0: u32, partial: bool, cs: ChanStats, a: ActParams) -> GradTerms {
  return rowTerms(j, rowLanes(j, e0) & vec4<bool>(partial), cs, a);
}

// The live lanes of g' into DR[j] one by one (a row's partial first or last unit: its other
// lanes belong to other invocations), unrolled: no loop-indexed vector.
fn storeLanes(j: u32, gm: vec4<f32>, live: vec4<bool>) {
  if (live.x) { DR[j].x = gm.x; }
  if (live.y) { DR[j].y = gm.y; }
  if (live.z) { DR[j].z = gm.z; }
  if (live.w) { DR[j].w = gm.w; }
}

// sum(g') and sum(g' * xhat) over one part of a channel, and with RESIDUAL g' (the residual's
// gradient) into DR.
@compute @workgroup_size(WG_PART)
fn backwardPartial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_PART;
  if (COLS) {
    if (i >= p.C / 4u * p.P) { return; }
    let cp = colPartOf(i);
    let cs = colStats(cp.c4);
    let a = actOf();
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    for (var n = cp.begin; n < cp.end; n++) {
      let j = n * (p.C / 4u) + cp.c4;
      let t = rowTerms(j, vec4<bool>(true), cs, a);
      s1 += t.gm;
      s2 += t.gx;
      if (RESIDUAL) { DR[j] = t.gm; }
    }
    for (var q = 0u; q < 4u; q++) { BPart[cp.part * p.C + 4u * cp.c4 + q] = vec2<f32>(s1[q], s2[q]); }
    return;
  }
  if (i >= p.C * p.P) { return; }
  let part = partOf(i);
  let cs = chanStats(part.c);
  let a = actOf();
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  if (ROWS) {
    for (var n = part.begin; n < part.end; n++) {
      let e0 = (n * p.C + part.c) * p.HW;
      let e1 = e0 + p.HW;
      // The whole units inside the row, then its partial first and last units, if any (lanes
      // masked), outside the loop: SwiftShader would run their lane-by-lane stores every unit.
      for (var j = (e0 + 3u) / 4u; j < e1 / 4u; j++) {
        let t = rowTerms(j, vec4<bool>(true), cs, a);
        a1 += t.gm;
        a2 += t.gx;
        if (RESIDUAL) { DR[j] = t.gm; }
      }
      let ja = e0 / 4u;
      let jb = (e1 - 1u) / 4u;
      let ta = rowEdgeTerms(ja, e0, e0 % 4u != 0u, cs, a);
      let tb = rowEdgeTerms(jb, e0, e1 % 4u != 0u, cs, a);
      a1 += ta.gm + tb.gm;
      a2 += ta.gx + tb.gx;
      if (RESIDUAL) {
        storeLanes(ja, ta.gm, rowLanes(ja, e0) & vec4<bool>(e0 % 4u != 0u));
        storeLanes(jb, tb.gm, rowLanes(jb, e0) & vec4<bool>(e1 % 4u != 0u));
      }
    }
  } else if (VEC4) {
    var w = runWalk(part);
    while (w.left > 0u) {
      let run = nextRun(&w, part.c);
      for (var j = run.first; j < run.first + run.count; j++) {
        let t = rowTerms(j, vec4<bool>(true), cs, a);
        a1 += t.gm;
        a2 += t.gx;
        if (RESIDUAL) { DR[j] = t.gm; }
      }
    }
  } else {
    // H*W < 4: a unit's lanes may lie in different rows.
    var q = chanStart(part.begin);
    for (var u = part.begin; u < part.end; u++) {
      let at = chanAddr4(q, part.c);
      let live = liveLanes(u);
      let t = unitTerms(at, live, cs, a);
      a1 += t.gm;
      a2 += t.gx;
      if (RESIDUAL) {
        for (var k = 0u; k < 4u; k++) {
          if (live[k]) { DR[at[k] / 4u][at[k] % 4u] = t.gm[k]; }
        }
      }
      q = chanNext(q);
    }
  }
  BPart[i] = vec2<f32>(hsum(a1), hsum(a2));
}

@compute @workgroup_size(64)
fn backwardFinal(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.C) { return; }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var part = 0u; part < p.P; part++) {
    let v = GPart[part * p.C + c];
    s1 += v.x;
    s2 += v.y;
  }
  DBetaOut[c] = s1;
  DGammaOut[c] = s2;
}

// ---- element-wise passes ----
//
// On SwiftShader every instruction of a shader runs whether its branch is taken or not (lanes
// are masked, not skipped), so the loops below hold only the work of a unit: no per-unit
// branches for rare cases and nothing that depends on a uniform at run time where a define can
// decide it.
//
// VEC4 and ROWS (H*W >= 4): invocation i takes chunk i % K of (n, c) row i / K, of one channel
// (its statistics read once): at most EL of the whole vec4 units inside the row, the last chunk
// up to the row's end. With ROWS the row's partial first and last units (shared with the rows
// before and after it) are chunk 0's, their lanes masked and stored one by one.
// COLS and H*W < 4: PER units in flat order, the statistics read lane by lane.

struct RowChunk {
  first: u32, // whole units [first, end)
  end: u32,
  c: u32,
  e0: u32, // the row's first element
  edges: bool, // this chunk takes the row's partial first and last units
}

fn rowChunk(i: u32) -> RowChunk {
  let row = i / p.K;
  let k = i - row * p.K;
  let e0 = row * p.HW;
  let w1 = (e0 + p.HW) / 4u;
  let first = (e0 + 3u) / 4u + k * p.EL;
  return RowChunk(first, select(min(first + p.EL, w1), w1, k + 1u == p.K), row % p.C, e0, k == 0u);
}

// The lanes of a row's first (0) or last (1) unit that lie in the row, when that unit is partial
// and the chunk takes the edges (ROWS; none otherwise).
fn edgeUnit(ch: RowChunk, which: u32) -> u32 {
  if (which == 0u) { return ch.e0 / 4u; }
  return (ch.e0 + p.HW - 1u) / 4u;
}

fn edgeLanes(ch: RowChunk, which: u32) -> vec4<bool> {
  let e1 = ch.e0 + p.HW;
  let partial = select(e1 % 4u != 0u, ch.e0 % 4u != 0u, which == 0u);
  return rowLanes(edgeUnit(ch, which), ch.e0) & vec4<bool>(partial && ch.edges);
}

fn invocationIndex(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn residualAt(j: u32) -> vec4<f32> {
  if (RESIDUAL) { return R[j]; }
  return vec4<f32>(0.0);
}

// v: the affine transform, residual, ReLU.
fn activate(x: vec4<f32>, r: vec4<f32>, scale: vec4<f32>, shift: vec4<f32>) -> vec4<f32> {
  var v = x * scale + shift;
  if (RESIDUAL) { v += r; }
  if (RELU) { v = max(v, vec4<f32>(0.0)); }
  return v;
}

fn activationAt(j: u32, cs: ChanStats) -> vec4<f32> {
  return activate(X[j], residualAt(j), cs.scale, cs.shift);
}

// dx of one unit from dy (or g' with MASKED) and the per-lane statistics and gradients.
fn inputGrad(x: vec4<f32>, dy: vec4<f32>, r: vec4<f32>, cs: ChanStats, dgamma: vec4<f32>, dbeta: vec4<f32>, a: ActParams) -> vec4<f32> {
  var g = dy;
  if (!MASKED) {
    var pre = x * cs.scale + cs.shift;
    if (RESIDUAL) { pre += r; }
    g = maskedGrad(g, pre, a);
  }
  if ((p.flags & TRAINING) != 0u) { g = g - (dbeta + (x - cs.mean) * cs.invstd * dgamma) * p.invM; }
  return cs.scale * g;
}

fn inputGradAt(j: u32, cs: ChanStats, dgamma: vec4<f32>, dbeta: vec4<f32>, a: ActParams) -> vec4<f32> {
  return inputGrad(X[j], DY[j], residualAt(j), cs, dgamma, dbeta, a);
}

// A partial unit's live lanes stored one by one (its other lanes are other invocations'),
// unrolled: no loop-indexed vector.
fn storeY(j: u32, v: vec4<f32>, live: vec4<bool>) {
  if (live.x) { Y[j].x = v.x; }
  if (live.y) { Y[j].y = v.y; }
  if (live.z) { Y[j].z = v.z; }
  if (live.w) { Y[j].w = v.w; }
}

fn storeDX(j: u32, v: vec4<f32>, live: vec4<bool>) {
  if (live.x) { DX[j].x = v.x; }
  if (live.y) { DX[j].y = v.y; }
  if (live.z) { DX[j].z = v.z; }
  if (live.w) { DX[j].w = v.w; }
}

// ---- the flat walk (COLS, H*W < 4) ----

// Channel of lane 0 of a unit and its position in the channel's run of HW elements.
struct FlatPos {
  c: u32,
  r: u32,
}

fn flatStart(j: u32) -> FlatPos {
  let e = 4u * j;
  let q = e / p.HW;
  return FlatPos(q % p.C, e - q * p.HW);
}

fn nextChannel(c: u32) -> u32 {
  return select(c + 1u, 0u, c + 1u == p.C);
}

fn flatNext(f: FlatPos) -> FlatPos {
  var g = f;
  g.r += 4u;
  while (g.r >= p.HW) { g.r -= p.HW; g.c = nextChannel(g.c); }
  return g;
}

// The channel of each lane.
fn lanesOf(f: FlatPos) -> vec4<u32> {
  var out: vec4<u32>;
  for (var k = 0u; k < 4u; k++) {
    var r = f.r + k;
    var c = f.c;
    while (r >= p.HW) { r -= p.HW; c = nextChannel(c); }
    out[k] = c;
  }
  return out;
}

// Row `row` of Stats (0 mean, 1 invstd, 2 scale, 3 shift) for each lane of the unit at f: with
// COLS four channels, one a lane; with H*W < 4 up to four channels, read lane by lane.
fn laneStat(row: u32, f: FlatPos) -> vec4<f32> {
  if (COLS) { return stats4At(row, f.c / 4u); }
  let ch = lanesOf(f);
  let base = row * p.C;
  return vec4<f32>(Stats[base + ch.x], Stats[base + ch.y], Stats[base + ch.z], Stats[base + ch.w]);
}

fn laneStats(f: FlatPos) -> ChanStats {
  return ChanStats(laneStat(0u, f), laneStat(1u, f), laneStat(2u, f), laneStat(3u, f));
}

// dgamma and dbeta for each lane of the unit at f.
fn laneGrads(f: FlatPos) -> array<vec4<f32>, 2> {
  if (COLS) {
    return array<vec4<f32>, 2>(vec4<f32>(DGamma[f.c], DGamma[f.c + 1u], DGamma[f.c + 2u], DGamma[f.c + 3u]),
                               vec4<f32>(DBeta[f.c], DBeta[f.c + 1u], DBeta[f.c + 2u], DBeta[f.c + 3u]));
  }
  let ch = lanesOf(f);
  return array<vec4<f32>, 2>(vec4<f32>(DGamma[ch.x], DGamma[ch.y], DGamma[ch.z], DGamma[ch.w]),
                             vec4<f32>(DBeta[ch.x], DBeta[ch.y], DBeta[ch.z], DBeta[ch.w]));
}

fn flatInputGrad(j: u32, f: FlatPos, a: ActParams) -> vec4<f32> {
  var gb = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
  if ((p.flags & TRAINING) != 0u) { gb = laneGrads(f); }
  return inputGradAt(j, laneStats(f), gb[0], gb[1], a);
}

struct FlatRange {
  first: u32,
  whole: u32, // units [first, whole) lie inside the tensor; whole < end: the partial last one
  end: u32,
}

fn flatRange(i: u32) -> FlatRange {
  let first = i * PER;
  let end = min(first + PER, (p.size + 3u) / 4u);
  return FlatRange(first, min(end, p.size / 4u), end);
}

fn liveFlat(j: u32) -> vec4<bool> {
  let e = 4u * j;
  return vec4<u32>(e, e + 1u, e + 2u, e + 3u) < vec4<u32>(p.size);
}

// ---- the passes ----

// ACT 2: the quantizer's range from the observer's state (bound as Obs, read only here).
fn observedAct() -> ActParams {
  if (ACT == 2u) { return actParams(atomicLoad(&Obs[0]), atomicLoad(&Obs[1]), p.bits); }
  return ActParams(1.0, 0.0, true);
}

// What the pass stores for v: v, or with ACT 2 its fake quantization.
fn outputOf(v: vec4<f32>, a: ActParams) -> vec4<f32> {
  if (ACT == 2u) { return select(fqAsym4(v, a, p.bits), v, a.through); }
  return v;
}

// With ACT 1 each invocation folds its own units' min/max and raises the observer's bounds
// itself: no workgroup tree (a single workgroupBarrier costs more than the whole pass on
// SwiftShader, and much on llvmpipe too). The atomics are skipped where the stored bound is
// already as large, so after the first few invocations most do one atomicLoad per bound and no
// read-modify-write. Without ACT 1 the min/max below is dead code, removed by the compilers.
fn raiseBound(slot: u32, k: u32) {
  if (k > atomicLoad(&Obs[slot])) { atomicMax(&Obs[slot], k); }
}

fn raiseBounds(mn: vec4<f32>, mx: vec4<f32>) {
  raiseBound(0u, key(-min(min(mn.x, mn.y), min(mn.z, mn.w))));
  raiseBound(1u, key(max(max(mx.x, mx.y), max(mx.z, mx.w))));
}

// y = v (ACT 0), v with its range observed (ACT 1), or fake-quant(v) (ACT 2).
@compute @workgroup_size(WG)
fn normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = invocationIndex(gid, nwg);
  let a = observedAct();
  var mn = vec4<f32>(posInf());
  var mx = vec4<f32>(negInf());
  if (VEC4 || ROWS) {
    if (i >= p.chunks) { return; }
    let ch = rowChunk(i);
    let cs = chanStats(ch.c);
    for (var j = ch.first; j < ch.end; j++) {
      let v = activationAt(j, cs);
      Y[j] = outputOf(v, a);
      mn = min(mn, v);
      mx = max(mx, v);
    }
    if (ROWS) {
      for (var e = 0u; e < 2u; e++) {
        let v = activationAt(edgeUnit(ch, e), cs);
        let live = edgeLanes(ch, e);
        storeY(edgeUnit(ch, e), outputOf(v, a), live);
        mn = min(mn, select(vec4<f32>(posInf()), v, live));
        mx = max(mx, select(vec4<f32>(negInf()), v, live));
      }
    }
  } else {
    let fr = flatRange(i);
    if (fr.first >= fr.end) { return; }
    var f = flatStart(fr.first);
    var j = fr.first;
    for (; j < fr.whole; j++) {
      let v = activate(X[j], residualAt(j), laneStat(2u, f), laneStat(3u, f));
      Y[j] = outputOf(v, a);
      mn = min(mn, v);
      mx = max(mx, v);
      f = flatNext(f);
    }
    if (j < fr.end) {
      let v = activate(X[j], residualAt(j), laneStat(2u, f), laneStat(3u, f));
      let live = liveFlat(j);
      Y[j] = select(Y[j], outputOf(v, a), live);
      mn = min(mn, select(vec4<f32>(posInf()), v, live));
      mx = max(mx, select(vec4<f32>(negInf()), v, live));
    }
  }
  // A chunk may hold no unit (a row's last chunk, ROWS): its bounds are empty, nothing is raised.
  if (ACT == 1u) { raiseBounds(mn, mx); }
}

@compute @workgroup_size(WG)
fn backwardInput(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = invocationIndex(gid, nwg);
  let a = actOf();
  if (VEC4 || ROWS) {
    if (i >= p.chunks) { return; }
    let ch = rowChunk(i);
    let cs = chanStats(ch.c);
    var dgamma = vec4<f32>(0.0);
    var dbeta = vec4<f32>(0.0);
    if ((p.flags & TRAINING) != 0u) {
      dgamma = vec4<f32>(DGamma[ch.c]);
      dbeta = vec4<f32>(DBeta[ch.c]);
    }
    for (var j = ch.first; j < ch.end; j++) { DX[j] = inputGradAt(j, cs, dgamma, dbeta, a); }
    if (ROWS) {
      for (var e = 0u; e < 2u; e++) { storeDX(edgeUnit(ch, e), inputGradAt(edgeUnit(ch, e), cs, dgamma, dbeta, a), edgeLanes(ch, e)); }
    }
    return;
  }
  let fr = flatRange(i);
  if (fr.first >= fr.end) { return; }
  var f = flatStart(fr.first);
  var j = fr.first;
  for (; j < fr.whole; j++) {
    DX[j] = flatInputGrad(j, f, a);
    f = flatNext(f);
  }
  if (j < fr.end) { DX[j] = select(DX[j], flatInputGrad(j, f, a), liveFlat(j)); }
}
