// SGD update in place, in PyTorch's order (torch.optim.SGD, foreach=False):
//   d = g + wd * p                                   (weight decay)
//   buf = d on the first step, else momentum * buf + (1 - dampening) * d
//   d = d + momentum * buf (nesterov), else d = buf  (momentum != 0 only)
//   p = p - lr * d
// lr and the other hyper-parameters are uniforms: a new learning rate compiles nothing.
// PER vec4s per invocation (docs/environment.md#speed-on-lavapipe); the last vec4 may reach
// into the buffer's padding (pool buffers are whole multiples of 64 bytes, and a parameter,
// its gradient and its momentum own theirs), whose values are never read as tensor elements.
//
// Several parameters per dispatch (engine/optim.ts groups them): a dispatch updates up to 4
// parameters ("slots"), as many as 8 storage bindings hold (WebGPU's default limit per stage):
// 4 without momentum (G, P each), 2 with (G, P, BUF each). The workgroups of a dispatch are
// laid end to end over the slots: slot k owns workgroups [starts[k], starts[k + 1]) and its
// first counts[k] vec4s; unused slots start at 0xffffffff. Bit k of firstMask is 1 on slot k's
// first step (buf = d: its BUF is not read). One dispatch per parameter costs tens of
// microseconds each on lavapipe (more on a busy machine), which dominated models with many
// small parameters (batch-norm weights and biases).
//
// Entry points: sgdPlain (G -> P), sgdMomentum (G -> P, BUF): one parameter (the remainder of
// a grouping, and the reference path); sgdPlain4 (G0..G3 -> P0..P3), sgdMomentum2 (MG0, MG1 ->
// MP0, MP1, MB0, MB1): several. P and BUF in place.

// The interface generated from the declaration in engine/optim.ts (struct Params: counts,
// starts, firstMask, nesterov, lr, momentum, dampening, weightDecay; bindings) goes here:
#interface

const WG: u32 = 256u;
const PER: u32 = 8u;

fn plainUpdate(w: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
  let d = g + p.weightDecay * w;
  return w - p.lr * d;
}

// (new p, new buf); `b` is not used on the first step (select, so its value may be anything).
fn momentumUpdate(w: vec4<f32>, g: vec4<f32>, b: vec4<f32>, first: bool) -> array<vec4<f32>, 2> {
  var d = g + p.weightDecay * w;
  let buf = select(p.momentum * b + (1.0 - p.dampening) * d, d, first);
  if (p.nesterov == 1u) { d = d + p.momentum * buf; } else { d = buf; }
  return array<vec4<f32>, 2>(w - p.lr * d, buf);
}

// This invocation's slot and its run of vec4s [x, y) in that slot, plus the first-step flag.
struct Run {
  slot: u32,
  begin: u32,
  end: u32,
  first: bool,
}

fn runOf(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> Run {
  let g = wid.x + wid.y * nwg.x;
  let slot = u32(g >= p.starts.y) + u32(g >= p.starts.z) + u32(g >= p.starts.w);
  let begin = ((g - p.starts[slot]) * WG + lid.x) * PER;
  return Run(slot, begin, min(begin + PER, p.counts[slot]), ((p.firstMask >> slot) & 1u) == 1u);
}

@compute @workgroup_size(WG)
fn sgdPlain(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = runOf(lid, wid, nwg);
  for (var i = r.begin; i < r.end; i++) { P[i] = plainUpdate(P[i], G[i]); }
}

@compute @workgroup_size(WG)
fn sgdMomentum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = runOf(lid, wid, nwg);
  for (var i = r.begin; i < r.end; i++) {
    let u = momentumUpdate(P[i], G[i], BUF[i], r.first);
    BUF[i] = u[1];
    P[i] = u[0];
  }
}

@compute @workgroup_size(WG)
fn sgdPlain4(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = runOf(lid, wid, nwg);
  switch (r.slot) {
    case 0u: { for (var i = r.begin; i < r.end; i++) { P0[i] = plainUpdate(P0[i], G0[i]); } }
    case 1u: { for (var i = r.begin; i < r.end; i++) { P1[i] = plainUpdate(P1[i], G1[i]); } }
    case 2u: { for (var i = r.begin; i < r.end; i++) { P2[i] = plainUpdate(P2[i], G2[i]); } }
    default: { for (var i = r.begin; i < r.end; i++) { P3[i] = plainUpdate(P3[i], G3[i]); } }
  }
}

@compute @workgroup_size(WG)
fn sgdMomentum2(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = runOf(lid, wid, nwg);
  if (r.slot == 0u) {
    for (var i = r.begin; i < r.end; i++) {
      let u = momentumUpdate(MP0[i], MG0[i], MB0[i], r.first);
      MB0[i] = u[1];
      MP0[i] = u[0];
    }
  } else {
    for (var i = r.begin; i < r.end; i++) {
      let u = momentumUpdate(MP1[i], MG1[i], MB1[i], r.first);
      MB1[i] = u[1];
      MP1[i] = u[0];
    }
  }
}
