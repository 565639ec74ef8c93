// Element-wise map: out = EXPR(a, b, s, s2) over an iteration shape, with broadcasting.
// Declared in engine/ops/elementwise.ts. Entry points: unary (A -> UnaryOut) and binary
// (A, B -> BinaryOut).
//
// Specialized per op by defines:
//   T          element type of the arrays (f32 for math, u32 for bit-exact copies)
//   {{EXPR}}   the expression in a, b (elements) and s, s2 (scalars from the uniform block)
//   STRIDED    false: each operand's index is offset + i * linear (linear 1, or 0 for a
//              broadcast scalar). true: i is split into coordinates of `shape` and each
//              operand's index is offset + sum(coord[d] * stride[d]); broadcast dims have
//              stride 0, and strided outputs let slice/concat/permute share this kernel.
// Params: size, rank, s, s2, per operand (A, B, Out) an offset, a linear step and a stride per
// dim; shape and strides hold up to 8 dims, outermost first.

// The interface generated from the declaration (struct Params, bindings, T, STRIDED) goes here:
#interface

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
