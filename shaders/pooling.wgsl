// 2-D pooling over (N, C, H, W) planes: average (count_include_pad, as PyTorch's default) and
// max (first maximum on ties, NaN wins, as PyTorch), with general kernel, stride and zero
// padding (no ceil mode). Forward runs one invocation per output; backward one per input
// element, gathering from the outputs whose windows cover it (no atomics). Global average
// pooling is average pooling with the whole plane as the window.
//   avgForward   X -> Y
//   maxForward   X -> Y, Idx (argmax within the plane, ih*W + iw, as PyTorch's indices)
//   avgBackward  G -> DX
//   maxBackward  G, Idx -> DX

struct Params {
  planes: u32,   // N*C
  H: u32,
  W: u32,
  OH: u32,
  OW: u32,
  kH: u32,
  kW: u32,
  sH: u32,
  sW: u32,
  pH: u32,
  pW: u32,
  size: u32,     // invocations: outputs (forward) or inputs (backward)
  invArea: f32,  // 1 / (kH*kW)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

fn flatIndex(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

// ---- avgForward ----
@group(0) @binding(0) var<storage, read> AX: array<f32>;
@group(0) @binding(1) var<storage, read_write> AY: array<f32>;
@group(0) @binding(2) var<uniform> pa: Params;

@compute @workgroup_size(256)
fn avgForward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flatIndex(gid, nwg);
  if (o >= pa.size) { return; }
  let ow = o % pa.OW;
  let oh = (o / pa.OW) % pa.OH;
  let plane = o / (pa.OW * pa.OH) * pa.H * pa.W;
  let h0 = i32(oh * pa.sH) - i32(pa.pH);
  let w0 = i32(ow * pa.sW) - i32(pa.pW);
  let h1 = min(h0 + i32(pa.kH), i32(pa.H));
  let w1 = min(w0 + i32(pa.kW), i32(pa.W));
  var acc = 0.0;
  for (var h = max(h0, 0); h < h1; h++) {
    let row = plane + u32(h) * pa.W;
    for (var w = max(w0, 0); w < w1; w++) { acc += AX[row + u32(w)]; }
  }
  AY[o] = acc * pa.invArea;
}

// ---- maxForward ----
@group(0) @binding(0) var<storage, read> MX: array<f32>;
@group(0) @binding(1) var<storage, read_write> MY: array<f32>;
@group(0) @binding(2) var<storage, read_write> MIdx: array<i32>;
@group(0) @binding(3) var<uniform> pm: Params;

@compute @workgroup_size(256)
fn maxForward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flatIndex(gid, nwg);
  if (o >= pm.size) { return; }
  let ow = o % pm.OW;
  let oh = (o / pm.OW) % pm.OH;
  let plane = o / (pm.OW * pm.OH) * pm.H * pm.W;
  let h0 = i32(oh * pm.sH) - i32(pm.pH);
  let w0 = i32(ow * pm.sW) - i32(pm.pW);
  let h1 = min(h0 + i32(pm.kH), i32(pm.H));
  let w1 = min(w0 + i32(pm.kW), i32(pm.W));
  let negInf = 0xff800000u;
  var best = bitcast<f32>(negInf);
  var arg = max(h0, 0) * i32(pm.W) + max(w0, 0);
  for (var h = max(h0, 0); h < h1; h++) {
    for (var w = max(w0, 0); w < w1; w++) {
      let k = h * i32(pm.W) + w;
      let v = MX[plane + u32(k)];
      if (v > best || v != v) {
        best = v;
        arg = k;
      }
    }
  }
  MY[o] = best;
  MIdx[o] = arg;
}

// The outputs along one axis whose windows cover input position i: [lo, hi).
fn covering(i: u32, pad: u32, k: u32, s: u32, outLen: u32) -> vec2<u32> {
  let ip = i + pad;
  var lo = 0u;
  if (ip >= k) { lo = (ip - k) / s + 1u; }
  let hi = min(ip / s + 1u, outLen);
  return vec2<u32>(lo, hi);
}

// ---- avgBackward ----
@group(0) @binding(0) var<storage, read> BG: array<f32>;
@group(0) @binding(1) var<storage, read_write> BDX: array<f32>;
@group(0) @binding(2) var<uniform> pb: Params;

@compute @workgroup_size(256)
fn avgBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  if (i >= pb.size) { return; }
  let iw = i % pb.W;
  let ih = (i / pb.W) % pb.H;
  let plane = i / (pb.W * pb.H) * pb.OH * pb.OW;
  let rh = covering(ih, pb.pH, pb.kH, pb.sH, pb.OH);
  let rw = covering(iw, pb.pW, pb.kW, pb.sW, pb.OW);
  var acc = 0.0;
  for (var oh = rh.x; oh < rh.y; oh++) {
    for (var ow = rw.x; ow < rw.y; ow++) { acc += BG[plane + oh * pb.OW + ow]; }
  }
  BDX[i] = acc * pb.invArea;
}

// ---- maxBackward ----
@group(0) @binding(0) var<storage, read> XG: array<f32>;
@group(0) @binding(1) var<storage, read> XIdx: array<i32>;
@group(0) @binding(2) var<storage, read_write> XDX: array<f32>;
@group(0) @binding(3) var<uniform> px: Params;

@compute @workgroup_size(256)
fn maxBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  if (i >= px.size) { return; }
  let iw = i % px.W;
  let ih = (i / px.W) % px.H;
  let plane = i / (px.W * px.H) * px.OH * px.OW;
  let here = i32(ih * px.W + iw);
  let rh = covering(ih, px.pH, px.kH, px.sH, px.OH);
  let rw = covering(iw, px.pW, px.kW, px.sW, px.OW);
  var acc = 0.0;
  for (var oh = rh.x; oh < rh.y; oh++) {
    for (var ow = rw.x; ow < rw.y; ow++) {
      let o = plane + oh * px.OW + ow;
      if (XIdx[o] == here) { acc += XG[o]; }
    }
  }
  XDX[i] = acc;
}
