// The compute ceiling of the browser benchmark (bench/ceiling-kernel.ts): how many multiply-adds
// an adapter runs when nothing else is in the way, and how far storage loads pull it below that.
// The same WGSL runs on both adapters, so each case's GFLOP/s can be read as a fraction of its
// own adapter's ceiling.
//
// `fma`: ACC independent accumulators (of type T: f32 or vec4<f32>), each a chain of
// `a = a * p.m + p.c` for p.iters turns, with no load in the loop and one store at the end (the
// sum of the accumulators, so that none is dead). The accumulators start from lane- and
// index-dependent values, so that no two chains are the same expression a compiler could merge;
// m and c come from the uniform block and the turn count too, so nothing can be folded or the
// loop unrolled away. STEP may hold each chain's step several times (an unrolled turn): a loop
// turn's own cost is large on both adapters (lavapipe's exit test and lane masks).
//
// `fmaLoad`: the same chains, each multiply-add fed by a storage load: `a = X[index] * p.m + a`,
// with an index that differs per lane (each lane walks its own run of X, a few hundred bytes away
// from its neighbour's; X is small enough to stay in cache), the pattern of the conv and matmul
// kernels' input loads. LOADS values are loaded per turn and accumulator k takes load k % LOADS,
// so ACC / LOADS multiply-adds share each load.
//
// Declared in bench/ceiling-kernel.ts, which writes the accumulator code (DECLARE, STEP, SUM,
// LOAD_STEP). Params: iters, the loop turns; m, c, the chains' constants; mask, X's length - 1
// (a power of two). Bindings: fma -> Out, fmaLoad X -> Y (one T per invocation: the entry points
// of a module that share a name must share its binding).

// The interface generated from that declaration goes here:
#interface

@compute @workgroup_size(WG)
fn fma(@builtin(global_invocation_id) gid: vec3<u32>) {
  let lane = f32(gid.x % 1024u) * 0.0009765625;
  {{DECLARE}}
  for (var i = 0u; i < p.iters; i++) {
    {{STEP}}
  }
  Out[gid.x] = {{SUM}};
}

@compute @workgroup_size(WG)
fn fmaLoad(@builtin(global_invocation_id) gid: vec3<u32>) {
  let lane = f32(gid.x % 1024u) * 0.0009765625;
  // 17 elements between neighbouring lanes: every lane's address differs, as in a conv tile.
  let base = gid.x * 17u;
  {{DECLARE}}
  for (var i = 0u; i < p.iters; i++) {
    let at = base + i * LOADS;
    {{LOAD_STEP}}
  }
  Y[gid.x] = {{SUM}};
}
