// A conv weight repacked as Wp[ci][tap][co], co padded to CP (a multiple of 4), so that the
// weights of 4 output channels at one (ci, tap) are one vec4 (conv-subgroup.wgsl reads it so).
// Declared in engine/ops/conv-pack.ts. Params: Cin, Cout, KK (taps), CP. Binding: W -> Wp. With
// FLIPPED, W is the [Cout'=Cin, Cin'=Cout, kH, kW] weight of the conv whose stride-1 input
// gradient the packed conv computes, read transposed and rotated by 180 degrees. Padding
// channels get 0.

// The interface generated from the declaration goes here:
#interface

// Invocation (x, y) writes the 4 channels from 4x of input channel y, at every tap: one vec4 a
// store (on llvmpipe each store is a loop over the lanes, so a vec4 store costs what a scalar
// one does). The grid gives ci and co, and the taps are a loop whose source addresses step by a
// constant: no integer division per element, which SwiftShader runs lane by lane (the flat
// one-vec4-an-invocation kernel's four divisions made it 4-5x slower there than on lavapipe).
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let CP4 = p.CP / 4u;
  let ci = gid.y;
  if (gid.x >= CP4) { return; }
  let co = vec4<u32>(4u * gid.x) + vec4<u32>(0u, 1u, 2u, 3u);
  let inside = co < vec4<u32>(p.Cout);
  let coIn = select(vec4<u32>(0u), co, inside);
  // Where each lane's tap 0 is read, and the step from one tap to the next.
  var src = select((coIn * p.Cin + ci) * p.KK, (ci * p.Cout + coIn) * p.KK + (p.KK - 1u), FLIPPED);
  let step = select(1u, 0xffffffffu, FLIPPED); // -1 when flipped
  var dst = ci * p.KK * CP4 + gid.x;
  for (var tap = 0u; tap < p.KK; tap++) {
    let v = vec4<f32>(W[src.x], W[src.y], W[src.z], W[src.w]);
    Wp[dst] = select(vec4<f32>(0.0), v, inside);
    src += vec4<u32>(step);
    dst += CP4;
  }
}
