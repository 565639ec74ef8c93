// Reduction over any set of axes. The host coalesces the input into "kept" and "reduced" dims;
// output element o and reduction step r address input element
//   offset(o over keptShape, keptStrides) + offset(r over redShape, redStrides).
// {{COMBINE}} folds v into acc; the result is multiplied by
// p.scale (1/n for mean, 1 otherwise).

// The interface generated from the declaration in engine/ops/reduce-kernel.ts (struct Params:
// outSize, redSize, keptRank, redRank, scale, keptShape/keptStrides/redShape/redStrides of up
// to 8 dims; bindings X -> Out; IDENTITY_BITS) goes here:
#interface

// The fold's starting value, from its bit pattern (IDENTITY_BITS); a runtime value because
// WGSL rejects infinities in constant expressions.
fn identity() -> f32 {
  var bits = IDENTITY_BITS;
  return bitcast<f32>(bits);
}

fn combine(acc: f32, v: f32) -> f32 {
  return {{COMBINE}};
}

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
@compute @workgroup_size(64)
fn perThread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * 64u;
  if (o >= p.outSize) { return; }
  let base = keptOffset(o);
  var acc: f32 = identity();
  if (p.redRank == 1u) {
    // The common case (one reduced run) avoids the division chain per element.
    let stride = p.redStrides[0][0];
    for (var r = 0u; r < p.redSize; r++) { acc = combine(acc, X[base + r * stride]); }
  } else {
    for (var r = 0u; r < p.redSize; r++) { acc = combine(acc, X[base + redOffset(r)]); }
  }
  Out[o] = acc * p.scale;
}

// One workgroup per output: 64 invocations stride through the reduction, then a tree in
// workgroup memory. For long reductions (sum of a whole tensor, per-channel statistics).
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn perGroup(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = wid.x + wid.y * nwg.x;
  let inRange = o < p.outSize;
  var acc: f32 = identity();
  if (inRange) {
    let base = keptOffset(o);
    if (p.redRank == 1u) {
      let stride = p.redStrides[0][0];
      for (var r = lid.x; r < p.redSize; r += 64u) { acc = combine(acc, X[base + r * stride]); }
    } else {
      for (var r = lid.x; r < p.redSize; r += 64u) { acc = combine(acc, X[base + redOffset(r)]); }
    }
  }
  partial[lid.x] = acc;
  workgroupBarrier();
  for (var half = 32u; half > 0u; half = half / 2u) {
    if (lid.x < half) { partial[lid.x] = combine(partial[lid.x], partial[lid.x + half]); }
    workgroupBarrier();
  }
  if (lid.x == 0u && inRange) { Out[o] = partial[0] * p.scale; }
}
