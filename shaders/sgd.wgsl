// SGD update in place, in PyTorch's order (torch.optim.SGD, foreach=False):
//   d = g + wd * p                                   (weight decay)
//   buf = d on the first step, else momentum * buf + (1 - dampening) * d
//   d = d + momentum * buf (nesterov), else d = buf  (momentum != 0 only)
//   p = p - lr * d
// lr and the other hyper-parameters are uniforms: a new learning rate compiles nothing.
// One vec4 per invocation; the last vec4 may reach into the buffer's padding (pool buffers are
// whole multiples of 64 bytes), whose values are never read as tensor elements.
//
// Entry points and bindings: sgdPlain (G -> P), sgdMomentum (G -> P, BUF); P and BUF in place.

// The interface generated from the declaration in engine/optim.ts (struct Params: n, first = 1 on
// a parameter's first step (buf = d), nesterov, lr, momentum, dampening, weightDecay; bindings)
// goes here:
#interface

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn sgdPlain(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (4u * i >= p.n) { return; }
  let w = P[i];
  let d = G[i] + p.weightDecay * w;
  P[i] = w - p.lr * d;
}

@compute @workgroup_size(256)
fn sgdMomentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (4u * i >= p.n) { return; }
  let w = P[i];
  var d = G[i] + p.weightDecay * w;
  var buf = d;
  if (p.first == 0u) { buf = p.momentum * BUF[i] + (1.0 - p.dampening) * d; }
  BUF[i] = buf;
  if (p.nesterov == 1u) { d = d + p.momentum * buf; } else { d = buf; }
  P[i] = w - p.lr * d;
}
