// The zero-padded, vec4-aligned copies the subgroup weight-gradient kernels read (rolling where
// X's rows are not vec4-aligned, rows always); declared in
// engine/ops/conv-subgroup.ts. Out[plane][r][c] = In[plane][r - top][c - left] where that is
// inside In's [planes][inH][inW], else 0, for Out [planes][outH][4 OUTV].
//
// One output row per invocation. Loads whose address differs per lane are scalar loops over
// the lanes on llvmpipe (a vec4 load is one loop for four values), so the source row is read as
// the OUTV + 1 vec4s that hold it, whatever its alignment, and each value picked from them with
// three selects (b & 3, the row start's offset in its vec4, differs per lane). One scalar load
// per output value took 5.9 ms for the [64, 32, 14, 14] input; this 0.8 ms. vec4s wholly
// before In are clamped to the first one and those past it read what the buffer holds there:
// both only feed values outside the source row, which are masked.
//
// Params: planes, inH, inW, outH, top, left. Binding: In (vec4) -> Out (vec4). Defines: OUTV;
// code: BODY (the loads, picks and stores of one row).

// The interface generated from the declaration goes here:
#interface

@compute @workgroup_size(64)
fn pad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.planes * p.outH) { return; }
  let r = i32(i % p.outH) - i32(p.top);
  let plane = i / p.outH;
  let rowIn = r >= 0 && r < i32(p.inH);
  let c0 = -i32(p.left);
  // The element of In under output column 0 (outside the row where c0 < 0).
  let b = i32(plane * p.inH * p.inW) + r * i32(p.inW) + c0;
  let q = b >> 2u;
  let odd = (b & 1) != 0;
  let high = (b & 2) != 0;
  let out0 = i * OUTV;
{{BODY}}
}
