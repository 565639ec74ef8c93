// A conv weight repacked as Wp[ci][tap][co], co padded to CP (a multiple of 4), so that the
// weights of 4 output channels at one (ci, tap) are one vec4 (conv-subgroup.wgsl reads it so).
// Declared in engine/ops/conv-pack.ts. Params: Cin, Cout, KK (taps), CP. Binding: W -> Wp. With
// FLIPPED, W is the [Cout'=Cin, Cin'=Cout, kH, kW] weight of the conv whose stride-1 input
// gradient the packed conv computes, read transposed and rotated by 180 degrees. Padding
// channels get 0.

// The interface generated from the declaration goes here:
#interface

// One invocation writes the 4 channels of one vec4: on llvmpipe each store is a loop over the
// lanes, so a vec4 store costs what a scalar one does.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let CP4 = p.CP / 4u;
  if (i >= p.Cin * p.KK * CP4) { return; }
  let co0 = (i % CP4) * 4u;
  let tap = (i / CP4) % p.KK;
  let ci = i / (CP4 * p.KK);
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) {
    let co = co0 + c;
    let inside = co < p.Cout;
    let src = select((co * p.Cin + ci) * p.KK + tap, (ci * p.Cout + co) * p.KK + (p.KK - 1u - tap), FLIPPED);
    v[c] = select(0.0, W[select(0u, src, inside)], inside);
  }
  Wp[i] = v;
}
