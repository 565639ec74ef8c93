// SGD update in place, in PyTorch's order (torch.optim.SGD, foreach=False):
//   d = g + wd * p                                   (weight decay)
//   buf = d on the first step, else momentum * buf + (1 - dampening) * d
//   d = d + momentum * buf (nesterov), else d = buf  (momentum != 0 only)
//   p = p - lr * d
// lr and the other hyper-parameters are uniforms: a new learning rate compiles nothing.
// One vec4 per invocation; the last vec4 may reach into the buffer's padding (pool buffers are
// whole multiples of 64 bytes), whose values are never read as tensor elements.
//
// Entry points and bindings: sgdPlain (G, P, params), sgdMomentum (G, P, BUF, params).

struct Params {
  n: u32,
  first: u32,      // 1 on a parameter's first step (buf = d)
  nesterov: u32,
  _pad: u32,
  lr: f32,
  momentum: f32,
  dampening: f32,
  weightDecay: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> G: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> P: array<vec4<f32>>;

@group(0) @binding(2) var<uniform> pp: Params;

@compute @workgroup_size(256)
fn sgdPlain(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (4u * i >= pp.n) { return; }
  let p = P[i];
  let d = G[i] + pp.weightDecay * p;
  P[i] = p - pp.lr * d;
}

@group(0) @binding(2) var<storage, read_write> BUF: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> pm: Params;

@compute @workgroup_size(256)
fn sgdMomentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (4u * i >= pm.n) { return; }
  let p = P[i];
  var d = G[i] + pm.weightDecay * p;
  var buf = d;
  if (pm.first == 0u) { buf = pm.momentum * BUF[i] + (1.0 - pm.dampening) * d; }
  BUF[i] = buf;
  if (pm.nesterov == 1u) { d = d + pm.momentum * buf; } else { d = buf; }
  P[i] = p - pm.lr * d;
}
