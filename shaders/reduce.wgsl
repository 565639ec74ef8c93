// Reductions: sum, max or min ({{COMBINE}} folds v into acc, for f32 and vec4<f32> alike; the
// result is multiplied by p.scale: 1/n for mean, 1 otherwise). Declared in
// engine/ops/reduce-kernel.ts, which splits a reduction into passes over contiguous views:
//
//   rows / rows4   [rows, len] -> [rows, chunks]: each invocation folds one chunk of chunkLen
//                  elements of one row (the reduced run is innermost and contiguous); rows4
//                  reads vec4s (len and chunkLen multiples of 4).
//   cols / cols4   [outer, len, K] -> [outer, chunks, K]: each invocation folds chunkLen rows of
//                  one column (cols) or of four adjacent columns (cols4, K a multiple of 4), so
//                  the reduced dim is outside a contiguous kept run.
// With chunks > 1 a later pass folds the partial results; each pass removes one reduced dim.
//
//   perThread / perGroup   the general kernel, the reference path: any coalesced kept/reduced
//                  dims, an invocation (perThread) or a workgroup of 64 (perGroup) per output;
//                  output element o and step r read offset(o over keptShape, keptStrides) +
//                  offset(r over redShape, redStrides).

// The interface generated from the declaration in engine/ops/reduce-kernel.ts (struct Params,
// bindings, IDENTITY_BITS) goes here:
#interface

const WG: u32 = 64u;

// The fold's starting value, from its bit pattern (IDENTITY_BITS); a runtime value because
// WGSL rejects infinities in constant expressions.
fn identity() -> f32 {
  var bits = IDENTITY_BITS;
  return bitcast<f32>(bits);
}

fn combine(acc: f32, v: f32) -> f32 {
  return {{COMBINE}};
}

fn combine4(acc: vec4<f32>, v: vec4<f32>) -> vec4<f32> {
  return {{COMBINE}};
}

fn flatIndex(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// ---- passes over contiguous views ----

@compute @workgroup_size(WG)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  if (i >= p.outer * p.chunks) { return; }
  let row = i / p.chunks;
  let begin = (i % p.chunks) * p.chunkLen;
  let end = min(begin + p.chunkLen, p.len);
  let base = row * p.len;
  var acc = identity();
  for (var r = begin; r < end; r++) { acc = combine(acc, X[base + r]); }
  Out[i] = acc * p.scale;
}

@compute @workgroup_size(WG)
fn rows4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  if (i >= p.outer * p.chunks) { return; }
  let row = i / p.chunks;
  let begin = (i % p.chunks) * p.chunkLen / 4u;
  let end = min(begin + p.chunkLen / 4u, p.len / 4u);
  let base = row * (p.len / 4u);
  var acc = vec4<f32>(identity());
  for (var r = begin; r < end; r++) { acc = combine4(acc, X4[base + r]); }
  Out[i] = combine(combine(acc.x, acc.y), combine(acc.z, acc.w)) * p.scale;
}

@compute @workgroup_size(WG)
fn cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  if (i >= p.outer * p.chunks * p.K) { return; }
  let k = i % p.K;
  let oc = i / p.K;
  let o = oc / p.chunks;
  let begin = (oc % p.chunks) * p.chunkLen;
  let end = min(begin + p.chunkLen, p.len);
  var at = (o * p.len + begin) * p.K + k;
  var acc = identity();
  for (var r = begin; r < end; r++) {
    acc = combine(acc, X[at]);
    at += p.K;
  }
  Out[i] = acc * p.scale;
}

@compute @workgroup_size(WG)
fn cols4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let K4 = p.K / 4u;
  let i = flatIndex(gid, nwg);
  if (i >= p.outer * p.chunks * K4) { return; }
  let k = i % K4;
  let oc = i / K4;
  let o = oc / p.chunks;
  let begin = (oc % p.chunks) * p.chunkLen;
  let end = min(begin + p.chunkLen, p.len);
  var at = (o * p.len + begin) * K4 + k;
  var acc = vec4<f32>(identity());
  for (var r = begin; r < end; r++) {
    acc = combine4(acc, X4[at]);
    at += K4;
  }
  Out4[i] = acc * p.scale;
}

// ---- the general kernel ----

fn keptOffset(o: u32) -> u32 {
  var rest = o;
  var off = 0u;
  for (var d = i32(p.keptRank) - 1; d >= 0; d--) {
    let n = p.keptShape[d / 4][d % 4];
    off += (rest % n) * p.keptStrides[d / 4][d % 4];
    rest = rest / n;
  }
  return off;
}

fn redOffset(r: u32) -> u32 {
  var rest = r;
  var off = 0u;
  for (var d = i32(p.redRank) - 1; d >= 0; d--) {
    let n = p.redShape[d / 4][d % 4];
    off += (rest % n) * p.redStrides[d / 4][d % 4];
    rest = rest / n;
  }
  return off;
}

// One invocation per output: for short reductions with many outputs.
@compute @workgroup_size(WG)
fn perThread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flatIndex(gid, nwg);
  if (o >= p.outSize) { return; }
  let base = keptOffset(o);
  var acc: f32 = identity();
  for (var r = 0u; r < p.redSize; r++) { acc = combine(acc, X[base + redOffset(r)]); }
  Out[o] = acc * p.scale;
}

// One workgroup per output: WG invocations stride through the reduction, then a tree in
// workgroup memory. For long reductions.
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn perGroup(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = wid.x + wid.y * nwg.x;
  let inRange = o < p.outSize;
  var acc: f32 = identity();
  if (inRange) {
    let base = keptOffset(o);
    for (var r = lid.x; r < p.redSize; r += WG) { acc = combine(acc, X[base + redOffset(r)]); }
  }
  partial[lid.x] = acc;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half = half / 2u) {
    if (lid.x < half) { partial[lid.x] = combine(partial[lid.x], partial[lid.x + half]); }
    workgroupBarrier();
  }
  if (lid.x == 0u && inRange) { Out[o] = partial[0] * p.scale; }
}
