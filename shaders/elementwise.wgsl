// Element-wise map: out = EXPR(a, b, s) over an iteration shape, with broadcasting.
//
// Specialized per op by template:
//   {{T}}          element type of the arrays (f32 for math, u32 for bit-exact copies)
//   {{EXPR}}       the expression in a, b (elements) and s, s2 (scalars from the uniform block)
//   {{DECLARE_B}}  the binding of the second input, empty for unary ops
//   {{LOAD_B}}     the body of loadB()
//   {{OUT_BINDING}}, {{PARAMS_BINDING}}  binding slots after the inputs
//   {{STRIDED}}    false: each operand's index is offset + i * linear (linear 1, or 0 for a
//                  broadcast scalar). true: i is split into coordinates of `shape` and each
//                  operand's index is offset + sum(coord[d] * stride[d]); broadcast dims have
//                  stride 0, and strided outputs let slice/concat/permute share this kernel.

struct Params {
  size: u32,
  rank: u32,
  s: f32,
  s2: f32,
  offsets: vec4<u32>,          // element offsets of a, b, out
  linear: vec4<u32>,           // per-operand step per element when not STRIDED
  shape: array<vec4<u32>, 2>,  // iteration shape, up to 8 dims, outermost first
  strideA: array<vec4<u32>, 2>,
  strideB: array<vec4<u32>, 2>,
  strideOut: array<vec4<u32>, 2>,
}

const STRIDED: bool = {{STRIDED}};

@group(0) @binding(0) var<storage, read> A: array<{{T}}>;
{{DECLARE_B}}
@group(0) @binding({{OUT_BINDING}}) var<storage, read_write> Out: array<{{T}}>;
@group(0) @binding({{PARAMS_BINDING}}) var<uniform> p: Params;

fn loadB(i: u32) -> {{T}} {
  {{LOAD_B}}
}

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

fn op(a: {{T}}, b: {{T}}, s: f32, s2: f32) -> {{T}} {
  return {{EXPR}};
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.size) { return; }
  var ia = p.offsets.x + i * p.linear.x;
  var ib = p.offsets.y + i * p.linear.y;
  var io = p.offsets.z + i * p.linear.z;
  if (STRIDED) {
    ia = p.offsets.x;
    ib = p.offsets.y;
    io = p.offsets.z;
    var rest = i;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
      let n = p.shape[d / 4][d % 4];
      let c = rest % n;
      rest = rest / n;
      ia += c * p.strideA[d / 4][d % 4];
      ib += c * p.strideB[d / 4][d % 4];
      io += c * p.strideOut[d / 4][d % 4];
    }
  }
  Out[io] = op(A[ia], loadB(ib), p.s, p.s2);
}
