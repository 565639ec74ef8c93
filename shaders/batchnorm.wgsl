// Batch normalization over (N, C, S...) tensors, S = H*W for 2-D inputs and 1 for (N, C).
// Element (n, c, s) lives at n*CHW + c*HW + s. Per-channel statistics are packed in one buffer
// Stats[4C] = [mean | invstd | scale | shift], scale = gamma*invstd, shift = beta - mean*scale,
// so the element-wise passes read a single per-channel buffer.
//
// Entry points (their bindings, inputs then outputs, are declared in engine/ops/batchnorm.ts):
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

// The interface generated from the declaration in engine/ops/batchnorm.ts (struct Params: the
// sizes, flags and hyper-parameters; each entry point's bindings) goes here:
#interface

const WG: u32 = 256u;
const RELU: u32 = 1u;
const TRAINING: u32 = 2u;
const UPDATE: u32 = 4u;

// ---- stats ----

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

// ---- normalize ----

@compute @workgroup_size(256)
fn normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.size) { return; }
  let c = (i / p.HW) % p.C;
  var y = NX[i] * NStats[2u * p.C + c] + NStats[3u * p.C + c];
  if ((p.flags & RELU) != 0u) { y = max(y, 0.0); }
  NY[i] = y;
}

// ---- backwardReduce ----

@compute @workgroup_size(WG)
fn backwardReduce(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = wid.x + wid.y * nwg.x;
  let l = lid.x;
  let inRange = c < p.C;
  var a1 = 0.0;
  var a2 = 0.0;
  if (inRange) {
    let mean = RStats[c];
    let invstd = RStats[p.C + c];
    let scale = RStats[2u * p.C + c];
    let shift = RStats[3u * p.C + c];
    let relu = (p.flags & RELU) != 0u;
    let base = c * p.HW;
    var n = l / p.HW;
    var s = l % p.HW;
    for (var r = l; r < p.M; r += WG) {
      let i = n * p.CHW + base + s;
      let x = RX[i];
      var g = RDY[i];
      if (relu && x * scale + shift <= 0.0) { g = 0.0; }
      a1 += g;
      a2 += g * (x - mean) * invstd;
      n += p.stepN;
      s += p.stepS;
      if (s >= p.HW) { s -= p.HW; n += 1u; }
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

@compute @workgroup_size(256)
fn backwardInput(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.size) { return; }
  let c = (i / p.HW) % p.C;
  let scale = GStats[2u * p.C + c];
  let x = GX[i];
  var g = GDY[i];
  if ((p.flags & RELU) != 0u && x * scale + GStats[3u * p.C + c] <= 0.0) { g = 0.0; }
  if ((p.flags & TRAINING) != 0u) {
    let xhat = (x - GStats[c]) * GStats[p.C + c];
    g = g - (GDBeta[c] + xhat * GDGamma[c]) * p.invM;
  }
  GDX[i] = scale * g;
}

// ---- normalize4 / backwardInput4: the same passes four elements at a time (vec4 loads and
// stores) when HW % 4 == 0, so the four share a channel. ----

@compute @workgroup_size(256)
fn normalize4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (4u * i >= p.size) { return; }
  let c = (4u * i / p.HW) % p.C;
  var y = VX[i] * VStats[2u * p.C + c] + VStats[3u * p.C + c];
  if ((p.flags & RELU) != 0u) { y = max(y, vec4<f32>(0.0)); }
  VY[i] = y;
}

@compute @workgroup_size(256)
fn backwardInput4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (4u * i >= p.size) { return; }
  let c = (4u * i / p.HW) % p.C;
  let scale = WStats[2u * p.C + c];
  let x = WX[i];
  var g = WDY[i];
  if ((p.flags & RELU) != 0u) { g = select(g, vec4<f32>(0.0), x * scale + WStats[3u * p.C + c] <= vec4<f32>(0.0)); }
  if ((p.flags & TRAINING) != 0u) {
    let xhat = (x - WStats[c]) * WStats[p.C + c];
    g = g - (WDBeta[c] + xhat * WDGamma[c]) * p.invM;
  }
  WDX[i] = scale * g;
}
