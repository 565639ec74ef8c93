// Element-wise map: out = EXPR(a, b, s, s2) over an iteration shape, with broadcasting.
// Declared in engine/ops/elementwise.ts, which picks the entry point:
//
//   map4           the fast path: the output is contiguous and every operand is contiguous, a
//                  single broadcast element, or a per-channel vector broadcast over the
//                  contiguous output (see the operand modes below). Vec4 loads and stores, PER
//                  vec4s per invocation, no per-element index arithmetic
//                  (docs/environment.md#speed-on-lavapipe: vec4 and several elements per
//                  invocation are what make a streaming kernel fast on lavapipe).
//   unary, binary  the general path: one element per invocation. STRIDED false: each
//                  operand's index is offset + i * linear (linear 1, or 0 for a broadcast
//                  scalar), for operands the fast path cannot take (offsets that are not a
//                  multiple of 4); STRIDED true: i is split into coordinates of `shape` and each
//                  operand's index is offset + sum(coord[d] * stride[d]) (broadcast dims have
//                  stride 0; strided outputs let slice/concat/permute share this kernel).
//
// Specialized per op by defines: T the element type (f32 for math, u32 for bit-exact copies),
// V = vec4<T>, {{EXPR}} the expression in a, b (elements) and s, s2 (scalars from the uniform
// block), STRIDED (above), HAS_B (map4: whether the op reads a second operand).
//
// map4 operand modes (modeA, modeB), for element e of the output and its vec4 j = e / 4:
//   0 contiguous   vec4 offset/4 + j (offset a multiple of 4)
//   1 scalar       the one element at offset, in every lane
//   2 channel      element offset + (e / inner) % chans, inner a multiple of 4: one value
//                  per vec4 ([1, C, 1, 1] against [N, C, H, W] with H*W % 4 == 0)
//   3 row          vec4 offset/4 + j % (chans / 4), inner 1 and chans a multiple of 4 ([D]
//                  against [N, D])
//   4 channel, any inner   as 2, with a value per lane (runs of H*W % 4 != 0, odd rows)
// The output's last vec4 may be partial (size % 4 != 0): its live lanes are merged into what
// the buffer holds there, so the elements after the tensor are written back unchanged.

// The interface generated from the declaration (struct Params, bindings, the defines) goes here:
#interface

const WG: u32 = 256u;
const PER: u32 = 8u;

// pow with PyTorch's answers for negative bases and integer exponents (WGSL's pow is
// undefined for x < 0).
fn pow_f(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  let r = pow(abs(x), y);
  if (x >= 0.0) { return r; }
  if (y != round(y)) {
    let nanBits = 0x7fc00000u; // a runtime value: WGSL rejects NaN in constant expressions
    return bitcast<f32>(nanBits);
  }
  if (abs(y) < 16777216.0 && (i32(y) & 1) == 1) { return -r; }
  return r;
}

fn op(a: T, b: T, s: f32, s2: f32) -> T {
  return {{EXPR}};
}

// ---- the general path ----

// Element indices of A, B and the output for iteration index i.
fn operandIndices(i: u32) -> vec3<u32> {
  if (!STRIDED) {
    return vec3<u32>(p.offsetA + i * p.linearA, p.offsetB + i * p.linearB, p.offsetOut + i * p.linearOut);
  }
  var ia = p.offsetA;
  var ib = p.offsetB;
  var io = p.offsetOut;
  var rest = i;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let n = p.shape[d / 4][d % 4];
    let c = rest % n;
    rest = rest / n;
    ia += c * p.strideA[d / 4][d % 4];
    ib += c * p.strideB[d / 4][d % 4];
    io += c * p.strideOut[d / 4][d % 4];
  }
  return vec3<u32>(ia, ib, io);
}

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.size) { return; }
  let at = operandIndices(i);
  UnaryOut[at.z] = op(A[at.x], T(), p.s, p.s2);
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.size) { return; }
  let at = operandIndices(i);
  BinaryOut[at.z] = op(A[at.x], B[at.y], p.s, p.s2);
}

// ---- the fast path ----

// Where an operand's values come from along one invocation's run of vec4s: `at` is the
// element (channel mode) or vec4 (other modes) for the current vec4; `r` the position inside
// the current channel's run (channel mode) or row (row mode), advanced without divisions.
struct Cursor {
  at: u32,
  r: u32,
}

fn startCursor(mode: u32, offset: u32, inner: u32, chans: u32, j: u32) -> Cursor {
  switch (mode) {
    case 0u: { return Cursor(offset / 4u + j, 0u); }
    case 1u: { return Cursor(offset, 0u); }
    case 2u, 4u: {
      let q = 4u * j / inner;
      return Cursor(offset + q % chans, 4u * j - q * inner);
    }
    default: {
      let r = j % (chans / 4u);
      return Cursor(offset / 4u + r, r);
    }
  }
}

fn advance(c: Cursor, mode: u32, offset: u32, inner: u32, chans: u32) -> Cursor {
  switch (mode) {
    case 0u: { return Cursor(c.at + 1u, 0u); }
    case 1u: { return c; }
    case 2u: {
      if (c.r + 4u < inner) { return Cursor(c.at, c.r + 4u); }
      return Cursor(select(c.at + 1u, offset, c.at + 1u == offset + chans), 0u);
    }
    case 4u: {
      var d = Cursor(c.at, c.r + 4u);
      while (d.r >= inner) {
        d.r -= inner;
        d.at = select(d.at + 1u, offset, d.at + 1u == offset + chans);
      }
      return d;
    }
    default: {
      if (c.r + 1u < chans / 4u) { return Cursor(c.at + 1u, c.r + 1u); }
      return Cursor(offset / 4u, 0u);
    }
  }
}

// Mode 4: the element each lane reads (lane 0's is c.at).
fn laneElements(c: Cursor, offset: u32, inner: u32, chans: u32) -> vec4<u32> {
  var out = vec4<u32>(c.at);
  var at = c.at;
  var r = c.r;
  for (var k = 1u; k < 4u; k++) {
    r += 1u;
    if (r == inner) {
      r = 0u;
      at = select(at + 1u, offset, at + 1u == offset + chans);
    }
    out[k] = at;
  }
  return out;
}

fn loadA(c: Cursor) -> V {
  if (MODE_A == 0u || MODE_A == 3u) { return VA[c.at]; }
  if (MODE_A == 4u) {
    let e = laneElements(c, p.offsetA, p.innerA, p.chansA);
    return V(VA[e.x / 4u][e.x % 4u], VA[e.y / 4u][e.y % 4u], VA[e.z / 4u][e.z % 4u], VA[e.w / 4u][e.w % 4u]);
  }
  return V(VA[c.at / 4u][c.at % 4u]);
}

fn loadB(c: Cursor) -> V {
  if (MODE_B == 0u || MODE_B == 3u) { return VB[c.at]; }
  if (MODE_B == 4u) {
    let e = laneElements(c, p.offsetB, p.innerB, p.chansB);
    return V(VB[e.x / 4u][e.x % 4u], VB[e.y / 4u][e.y % 4u], VB[e.z / 4u][e.z % 4u], VB[e.w / 4u][e.w % 4u]);
  }
  return V(VB[c.at / 4u][c.at % 4u]);
}

fn mapUnit(ca: Cursor, cb: Cursor) -> V {
  let a = loadA(ca);
  var b = V();
  if (HAS_B) { b = loadB(cb); }
  return V(op(a.x, b.x, p.s, p.s2), op(a.y, b.y, p.s, p.s2), op(a.z, b.z, p.s, p.s2), op(a.w, b.w, p.s, p.s2));
}

// The loop holds only whole vec4s: the partial last one is peeled off after it (SwiftShader runs
// a branch's code whether it is taken or not, so a per-vec4 tail check costs every vec4).
@compute @workgroup_size(WG)
fn map4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n4 = (p.size + 3u) / 4u;
  let first = (gid.x + gid.y * nwg.x * WG) * PER;
  if (first >= n4) { return; }
  var ca = startCursor(MODE_A, p.offsetA, p.innerA, p.chansA, first);
  var cb = ca;
  if (HAS_B) { cb = startCursor(MODE_B, p.offsetB, p.innerB, p.chansB, first); }
  let last = min(first + PER, n4);
  let o = p.offsetOut / 4u;
  var j = first;
  for (; j < min(last, p.size / 4u); j++) {
    VOut[o + j] = mapUnit(ca, cb);
    ca = advance(ca, MODE_A, p.offsetA, p.innerA, p.chansA);
    if (HAS_B) { cb = advance(cb, MODE_B, p.offsetB, p.innerB, p.chansB); }
  }
  if (j < last) {
    // The tensor's partial last vec4: its live lanes merged into what the buffer holds.
    let r = mapUnit(ca, cb);
    var merged = VOut[o + j];
    for (var c = 0u; c < p.size - 4u * j; c++) { merged[c] = r[c]; }
    VOut[o + j] = merged;
  }
}
