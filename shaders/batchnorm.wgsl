// Batch normalization over (N, C, S...) tensors, S = H*W for 2-D inputs and 1 for (N, C).
// Element (n, c, s) lives at n*CHW + c*HW + s. Per-channel statistics are packed in one buffer
// Stats[4C] = [mean | invstd | scale | shift], scale = gamma*invstd, shift = beta - mean*scale,
// so the element-wise passes read a single per-channel buffer.
//
// Entry points (each binds only its own variables: inputs, outputs, then the uniform block):
//   stats          training: one workgroup per channel, tree-reduced sums of (x - k) and
//                  (x - k)^2 with k = the channel's first element (a shift that keeps the f32
//                  variance accurate when |mean| >> std); writes Stats and updates the running
//                  mean/var (unbiased) and num_batches_tracked in place.
//   evalStats      eval: Stats from the running statistics (one invocation per channel).
//   normalize      y = x*scale + shift (then max(y, 0) with the relu flag).
//   backwardReduce one workgroup per channel: sum(g) and sum(g*xhat), g = dy masked by the
//                  ReLU (recomputed from x, so y is not read), which are dbeta and dgamma.
//   backwardInput  dx = scale*(g - sum(g)/M - xhat*sum(g*xhat)/M) in training,
//                  dx = scale*g in eval.

struct Params {
  N: u32,
  C: u32,
  HW: u32,
  M: u32,        // elements per channel: N*HW
  CHW: u32,
  stepN: u32,    // WG / HW and WG % HW: how (n, s) advance when the flat index r grows by WG
  stepS: u32,
  size: u32,     // N*C*HW
  flags: u32,    // 1: relu, 2: training (batch statistics), 4: update running statistics
  eps: f32,
  momentum: f32,
  invM: f32,
  unbias: f32,   // M / (M - 1)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const WG: u32 = 256u;
const RELU: u32 = 1u;
const TRAINING: u32 = 2u;
const UPDATE: u32 = 4u;

// ---- stats ----
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Gamma: array<f32>;
@group(0) @binding(2) var<storage, read> Beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> Stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> RunMean: array<f32>;
@group(0) @binding(5) var<storage, read_write> RunVar: array<f32>;
@group(0) @binding(6) var<storage, read_write> NumBatches: array<i32>;
@group(0) @binding(7) var<uniform> p: Params;

var<workgroup> part1: array<f32, WG>;
var<workgroup> part2: array<f32, WG>;

// Tree-reduce part1/part2 across the workgroup; the sums end up in element 0.
fn treeReduce(l: u32) {
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (l < half) {
      part1[l] += part1[l + half];
      part2[l] += part2[l + half];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = wid.x + wid.y * nwg.x;
  let l = lid.x;
  let inRange = c < p.C;
  var a1 = 0.0;
  var a2 = 0.0;
  var k = 0.0;
  if (inRange) {
    let base = c * p.HW;
    k = X[base];
    var n = l / p.HW;
    var s = l % p.HW;
    for (var r = l; r < p.M; r += WG) {
      let d = X[n * p.CHW + base + s] - k;
      a1 += d;
      a2 += d * d;
      n += p.stepN;
      s += p.stepS;
      if (s >= p.HW) { s -= p.HW; n += 1u; }
    }
  }
  part1[l] = a1;
  part2[l] = a2;
  treeReduce(l);
  if (l == 0u && inRange) {
    let s1 = part1[0];
    let s2 = part2[0];
    let mean = k + s1 * p.invM;
    let variance = max((s2 - s1 * s1 * p.invM) * p.invM, 0.0);
    let invstd = 1.0 / sqrt(variance + p.eps);
    let scale = Gamma[c] * invstd;
    Stats[c] = mean;
    Stats[p.C + c] = invstd;
    Stats[2u * p.C + c] = scale;
    Stats[3u * p.C + c] = Beta[c] - mean * scale;
    if ((p.flags & UPDATE) != 0u) {
      RunMean[c] = (1.0 - p.momentum) * RunMean[c] + p.momentum * mean;
      RunVar[c] = (1.0 - p.momentum) * RunVar[c] + p.momentum * variance * p.unbias;
      if (c == 0u) { NumBatches[0] += 1; }
    }
  }
}

// ---- evalStats ----
@group(0) @binding(0) var<storage, read> ERunMean: array<f32>;
@group(0) @binding(1) var<storage, read> ERunVar: array<f32>;
@group(0) @binding(2) var<storage, read> EGamma: array<f32>;
@group(0) @binding(3) var<storage, read> EBeta: array<f32>;
@group(0) @binding(4) var<storage, read_write> EStats: array<f32>;
@group(0) @binding(5) var<uniform> pe: Params;

@compute @workgroup_size(64)
fn evalStats(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= pe.C) { return; }
  let mean = ERunMean[c];
  let invstd = 1.0 / sqrt(ERunVar[c] + pe.eps);
  let scale = EGamma[c] * invstd;
  EStats[c] = mean;
  EStats[pe.C + c] = invstd;
  EStats[2u * pe.C + c] = scale;
  EStats[3u * pe.C + c] = EBeta[c] - mean * scale;
}

// ---- normalize ----
@group(0) @binding(0) var<storage, read> NX: array<f32>;
@group(0) @binding(1) var<storage, read> NStats: array<f32>;
@group(0) @binding(2) var<storage, read_write> NY: array<f32>;
@group(0) @binding(3) var<uniform> pn: Params;

@compute @workgroup_size(256)
fn normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= pn.size) { return; }
  let c = (i / pn.HW) % pn.C;
  var y = NX[i] * NStats[2u * pn.C + c] + NStats[3u * pn.C + c];
  if ((pn.flags & RELU) != 0u) { y = max(y, 0.0); }
  NY[i] = y;
}

// ---- backwardReduce ----
@group(0) @binding(0) var<storage, read> RDY: array<f32>;
@group(0) @binding(1) var<storage, read> RX: array<f32>;
@group(0) @binding(2) var<storage, read> RStats: array<f32>;
@group(0) @binding(3) var<storage, read_write> RDGamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> RDBeta: array<f32>;
@group(0) @binding(5) var<uniform> pr: Params;

@compute @workgroup_size(WG)
fn backwardReduce(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = wid.x + wid.y * nwg.x;
  let l = lid.x;
  let inRange = c < pr.C;
  var a1 = 0.0;
  var a2 = 0.0;
  if (inRange) {
    let mean = RStats[c];
    let invstd = RStats[pr.C + c];
    let scale = RStats[2u * pr.C + c];
    let shift = RStats[3u * pr.C + c];
    let relu = (pr.flags & RELU) != 0u;
    let base = c * pr.HW;
    var n = l / pr.HW;
    var s = l % pr.HW;
    for (var r = l; r < pr.M; r += WG) {
      let i = n * pr.CHW + base + s;
      let x = RX[i];
      var g = RDY[i];
      if (relu && x * scale + shift <= 0.0) { g = 0.0; }
      a1 += g;
      a2 += g * (x - mean) * invstd;
      n += pr.stepN;
      s += pr.stepS;
      if (s >= pr.HW) { s -= pr.HW; n += 1u; }
    }
  }
  part1[l] = a1;
  part2[l] = a2;
  treeReduce(l);
  if (l == 0u && inRange) {
    RDBeta[c] = part1[0];
    RDGamma[c] = part2[0];
  }
}

// ---- backwardInput ----
@group(0) @binding(0) var<storage, read> GDY: array<f32>;
@group(0) @binding(1) var<storage, read> GX: array<f32>;
@group(0) @binding(2) var<storage, read> GStats: array<f32>;
@group(0) @binding(3) var<storage, read> GDGamma: array<f32>;
@group(0) @binding(4) var<storage, read> GDBeta: array<f32>;
@group(0) @binding(5) var<storage, read_write> GDX: array<f32>;
@group(0) @binding(6) var<uniform> pg: Params;

@compute @workgroup_size(256)
fn backwardInput(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= pg.size) { return; }
  let c = (i / pg.HW) % pg.C;
  let scale = GStats[2u * pg.C + c];
  let x = GX[i];
  var g = GDY[i];
  if ((pg.flags & RELU) != 0u && x * scale + GStats[3u * pg.C + c] <= 0.0) { g = 0.0; }
  if ((pg.flags & TRAINING) != 0u) {
    let xhat = (x - GStats[c]) * GStats[pg.C + c];
    g = g - (GDBeta[c] + xhat * GDGamma[c]) * pg.invM;
  }
  GDX[i] = scale * g;
}

// ---- normalize4 / backwardInput4: the same passes four elements at a time (vec4 loads and
// stores) when HW % 4 == 0, so the four share a channel. ----
@group(0) @binding(0) var<storage, read> VX: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> VStats: array<f32>;
@group(0) @binding(2) var<storage, read_write> VY: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> pv: Params;

@compute @workgroup_size(256)
fn normalize4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (4u * i >= pv.size) { return; }
  let c = (4u * i / pv.HW) % pv.C;
  var y = VX[i] * VStats[2u * pv.C + c] + VStats[3u * pv.C + c];
  if ((pv.flags & RELU) != 0u) { y = max(y, vec4<f32>(0.0)); }
  VY[i] = y;
}

@group(0) @binding(0) var<storage, read> WDY: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> WX: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> WStats: array<f32>;
@group(0) @binding(3) var<storage, read> WDGamma: array<f32>;
@group(0) @binding(4) var<storage, read> WDBeta: array<f32>;
@group(0) @binding(5) var<storage, read_write> WDX: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> pw: Params;

@compute @workgroup_size(256)
fn backwardInput4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (4u * i >= pw.size) { return; }
  let c = (4u * i / pw.HW) % pw.C;
  let scale = WStats[2u * pw.C + c];
  let x = WX[i];
  var g = WDY[i];
  if ((pw.flags & RELU) != 0u) { g = select(g, vec4<f32>(0.0), x * scale + WStats[3u * pw.C + c] <= vec4<f32>(0.0)); }
  if ((pw.flags & TRAINING) != 0u) {
    let xhat = (x - WStats[c]) * WStats[pw.C + c];
    g = g - (WDBeta[c] + xhat * WDGamma[c]) * pw.invM;
  }
  WDX[i] = scale * g;
}
