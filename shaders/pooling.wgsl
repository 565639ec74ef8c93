// 2-D pooling over (N, C, H, W) planes: average (count_include_pad, as PyTorch's default) and
// max (first maximum on ties, NaN wins, as PyTorch), with general kernel, stride and zero
// padding (no ceil mode). Forward runs one invocation per output; backward one per input
// element, gathering from the outputs whose windows cover it (no atomics). Global average
// pooling is average pooling with the whole plane as the window.
//   avgForward   X -> Y
//   maxForward   X -> Y, Idx (argmax within the plane, ih*W + iw, as PyTorch's indices)
//   avgBackward  G -> DX
//   maxBackward  G, Idx -> DX

// The interface generated from the declaration in engine/ops/pooling.ts (struct Params: planes
// = N*C, H, W, OH, OW, kH, kW, sH, sW, pH, pW, size = invocations, invArea = 1 / (kH*kW);
// each entry point's bindings) goes here:
#interface

fn flatIndex(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

// The input window of output o: its plane's first element, and rows [h0, h1) and columns
// [w0, w1) (h0 and w0 may be negative, in the padding; h1 and w1 are clipped to the input).
struct Window {
  plane: u32,
  h0: i32,
  w0: i32,
  h1: i32,
  w1: i32,
}

fn windowOf(o: u32) -> Window {
  let ow = o % p.OW;
  let oh = (o / p.OW) % p.OH;
  let h0 = i32(oh * p.sH) - i32(p.pH);
  let w0 = i32(ow * p.sW) - i32(p.pW);
  return Window(o / (p.OW * p.OH) * p.H * p.W, h0, w0, min(h0 + i32(p.kH), i32(p.H)), min(w0 + i32(p.kW), i32(p.W)));
}

// ---- avgForward ----

@compute @workgroup_size(256)
fn avgForward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flatIndex(gid, nwg);
  if (o >= p.size) { return; }
  let win = windowOf(o);
  var acc = 0.0;
  for (var h = max(win.h0, 0); h < win.h1; h++) {
    let row = win.plane + u32(h) * p.W;
    for (var w = max(win.w0, 0); w < win.w1; w++) { acc += AX[row + u32(w)]; }
  }
  AY[o] = acc * p.invArea;
}

// ---- maxForward ----

@compute @workgroup_size(256)
fn maxForward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flatIndex(gid, nwg);
  if (o >= p.size) { return; }
  let win = windowOf(o);
  let negInf = 0xff800000u;
  var best = bitcast<f32>(negInf);
  var arg = max(win.h0, 0) * i32(p.W) + max(win.w0, 0);
  for (var h = max(win.h0, 0); h < win.h1; h++) {
    for (var w = max(win.w0, 0); w < win.w1; w++) {
      let k = h * i32(p.W) + w;
      let v = MX[win.plane + u32(k)];
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

@compute @workgroup_size(256)
fn avgBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  if (i >= p.size) { return; }
  let iw = i % p.W;
  let ih = (i / p.W) % p.H;
  let plane = i / (p.W * p.H) * p.OH * p.OW;
  let rh = covering(ih, p.pH, p.kH, p.sH, p.OH);
  let rw = covering(iw, p.pW, p.kW, p.sW, p.OW);
  var acc = 0.0;
  for (var oh = rh.x; oh < rh.y; oh++) {
    for (var ow = rw.x; ow < rw.y; ow++) { acc += BG[plane + oh * p.OW + ow]; }
  }
  BDX[i] = acc * p.invArea;
}

// ---- maxBackward ----

@compute @workgroup_size(256)
fn maxBackward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  if (i >= p.size) { return; }
  let iw = i % p.W;
  let ih = (i / p.W) % p.H;
  let plane = i / (p.W * p.H) * p.OH * p.OW;
  let here = i32(ih * p.W + iw);
  let rh = covering(ih, p.pH, p.kH, p.sH, p.OH);
  let rw = covering(iw, p.pW, p.kW, p.sW, p.OW);
  var acc = 0.0;
  for (var oh = rh.x; oh < rh.y; oh++) {
    for (var ow = rw.x; ow < rw.y; ow++) {
      let o = plane + oh * p.OW + ow;
      if (XIdx[o] == here) { acc += XG[o]; }
    }
  }
  XDX[i] = acc;
}
