// 2-D convolution, NCHW activations, PyTorch weight layout [Cout, Cin, kH, kW], as implicit
// GEMM: no im2col buffer, the B operand's address is computed on the fly (padding reads as 0).
// Each invocation owns an 8 (rows) x 8 (columns) block of the GEMM output in registers, like
// shaders/matmul.wgsl; the K loop is written as nested loops over its factors so the inner
// loop needs no division.
//
//   forward     Y[n,co,oh,ow]    rows co,  cols (n,oh,ow),  K (ci,kh,kw)
//   inputGrad   dX[n,ci,ih,iw]   rows ci,  cols (n,ih,iw),  K (co,kh,kw): a transposed conv
//   weightGrad  dW[co,ci,kh,kw]  rows co,  cols (ci,kh,kw), K (n,oh,ow)
//
// Declared in engine/ops/conv.ts. Params: the geometry (N, Cin, H, W, Cout, OH, OW, kH, kW,
// stride, pad). Bindings: In0, In1 (forward: W, X; inputGrad: dY, W; weightGrad: dY, X) -> Out.
// Column indices past the end are clamped into range for loads; their results are not stored.
// The workgroup is WG_X x WG_Y invocations (64 in all): few rows (channels) get a wide, flat
// workgroup so no invocation sits idle past the last channel.

// The interface generated from that declaration (struct Params, bindings, the defines KH, KW,
// STRIDE, TC, FLIPPED, WG_X, WG_Y) goes here:
#interface

// Input element or 0 outside the image (the zero padding). `ih`, `iw` are signed.
fn loadX(X_base: u32, ih: i32, iw: i32) -> f32 {
  let inside = ih >= 0 && iw >= 0 && ih < i32(p.H) && iw < i32(p.W);
  let v = In1[select(0u, X_base + u32(ih) * p.W + u32(iw), inside)];
  return select(0.0, v, inside);
}

// Forward. Specialized by defines on the kernel size and stride (KH, KW, STRIDE) so the window
// loops unroll; FLIPPED makes it the input gradient of a stride-1 conv (see wRow below). A GEMM
// column tile is TR x TC output pixels (TC columns of TR = 8 / TC rows; TC < 8 for maps
// narrower than 8, so few lanes idle).
// For each (ci, kh) and tile row, the TC*STRIDE + KW - 1 input values under the windows are
// loaded once into `seg` and reused for every kw.
const TR: u32 = 8u / TC;
const SEG: u32 = TC * STRIDE + KW - 1u;

@compute @workgroup_size(WG_X, WG_Y)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let tilesW = (p.OW + TC - 1u) / TC;
  let tilesH = (p.OH + TR - 1u) / TR;
  let tiles = p.N * tilesH * tilesW;
  let row0 = gid.y * 8u;
  if (gid.x >= tiles || row0 >= p.Cout) { return; }
  let n = gid.x / (tilesH * tilesW);
  let oh0 = ((gid.x / tilesW) % tilesH) * TR;
  let ow0 = (gid.x % tilesW) * TC;
  let K = p.Cin * KH * KW;
  let iw0 = i32(ow0 * STRIDE) - i32(p.pad);

  // Weight offsets: W[co][ci][kh][kw], or with FLIPPED the stored weight of the conv whose
  // input gradient this is, read transposed and rotated: W'[ci][co][KH-1-kh][KW-1-kw].
  var wRow: array<u32, 8>;
  for (var r = 0u; r < 8u; r++) {
    let co = min(row0 + r, p.Cout - 1u);
    wRow[r] = select(co * K, co * KH * KW, FLIPPED);
  }

  var acc: array<vec4<f32>, 16>;
  for (var ci = 0u; ci < p.Cin; ci++) {
    let chan = (n * p.Cin + ci) * p.H * p.W;
    let wCi = select(ci * KH * KW, ci * p.Cout * KH * KW, FLIPPED);
    for (var kh = 0u; kh < KH; kh++) {
      var seg: array<array<f32, SEG>, TR>;
      for (var rt = 0u; rt < TR; rt++) {
        let ih = i32((oh0 + rt) * STRIDE + kh) - i32(p.pad);
        let rowInside = ih >= 0 && ih < i32(p.H);
        let rowBase = chan + u32(max(ih, 0)) * p.W;
        for (var t = 0u; t < SEG; t++) {
          let iw = iw0 + i32(t);
          let inside = rowInside && iw >= 0 && iw < i32(p.W);
          seg[rt][t] = select(0.0, In1[select(0u, rowBase + u32(iw), inside)], inside);
        }
      }
      for (var kw = 0u; kw < KW; kw++) {
        let tap = select(kh * KW + kw, (KH - 1u - kh) * KW + (KW - 1u - kw), FLIPPED);
        var b: array<f32, 8>;
        for (var j = 0u; j < 8u; j++) { b[j] = seg[j / TC][kw + (j % TC) * STRIDE]; }
        let b0 = vec4<f32>(b[0], b[1], b[2], b[3]);
        let b1 = vec4<f32>(b[4], b[5], b[6], b[7]);
        for (var r = 0u; r < 8u; r++) {
          let a = In0[wRow[r] + wCi + tap];
          acc[2u * r] += a * b0;
          acc[2u * r + 1u] += a * b1;
        }
      }
    }
  }

  let plane = p.OH * p.OW;
  for (var r = 0u; r < 8u; r++) {
    let co = row0 + r;
    if (co >= p.Cout) { break; }
    let base = (n * p.Cout + co) * plane;
    for (var j = 0u; j < 8u; j++) {
      let oh = oh0 + j / TC;
      let ow = ow0 + j % TC;
      if (oh < p.OH && ow < p.OW) { Out[base + oh * p.OW + ow] = acc[2u * r + j / 4u][j % 4u]; }
    }
  }
}

// Input gradient for strided convs (stride-1 ones run `forward` with FLIPPED).
// dX[n,ci,ih,iw] = sum over (co,kh,kw) with ih+pad-kh = oh*stride and iw+pad-kw = ow*stride.
// A column tile is 8 input pixels of one row that share iw's phase (iw mod stride):
// iw = phase + stride * (8t + j). Within a tile, whether a tap (kh, kw) hits the output grid
// is the same for all 8 pixels, so untouched taps are skipped whole (3/4 of them at stride 2),
// and the dY values a tap reads are 8 consecutive elements of one row.
@compute @workgroup_size(WG_X, WG_Y)
fn inputGrad(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = p.stride;
  let perPhase = (p.W + s - 1u) / s;           // pixels of phase 0 in a row (the most)
  let tilesPerPhase = (perPhase + 7u) / 8u;
  let tilesPerRow = tilesPerPhase * s;
  let tiles = p.N * p.H * tilesPerRow;
  let row0 = gid.y * 8u;
  if (gid.x >= tiles || row0 >= p.Cin) { return; }
  let n = gid.x / (p.H * tilesPerRow);
  let ih = (gid.x / tilesPerRow) % p.H;
  let phase = (gid.x % tilesPerRow) / tilesPerPhase;
  let t = gid.x % tilesPerPhase;
  let iwFirst = phase + s * 8u * t;             // iw of pixel j is iwFirst + s*j
  let oplane = p.OH * p.OW;
  let kk = p.kH * p.kW;

  var ciRow: array<u32, 8>;
  for (var r = 0u; r < 8u; r++) { ciRow[r] = min(row0 + r, p.Cin - 1u) * kk; }

  var acc: array<vec4<f32>, 16>;
  for (var kh = 0u; kh < p.kH; kh++) {
    let ohs = i32(ih + p.pad) - i32(kh);
    if (ohs < 0 || ohs % i32(s) != 0 || ohs / i32(s) >= i32(p.OH)) { continue; }
    let oh = u32(ohs) / s;
    for (var kw = 0u; kw < p.kW; kw++) {
      let ows = i32(iwFirst + p.pad) - i32(kw);  // pixel j: ows + s*j, so ow = ows/s + j
      if (((ows % i32(s)) + i32(s)) % i32(s) != 0) { continue; }
      let ow0 = (ows - ((ows % i32(s)) + i32(s)) % i32(s)) / i32(s);  // floor division, exact here
      var valid: array<bool, 8>;
      var idx: array<u32, 8>;
      for (var j = 0u; j < 8u; j++) {
        let ow = ow0 + i32(j);
        valid[j] = ow >= 0 && ow < i32(p.OW) && iwFirst + s * j < p.W;
        idx[j] = select(0u, oh * p.OW + u32(ow), valid[j]);
      }
      let tap = kh * p.kW + kw;
      for (var co = 0u; co < p.Cout; co++) {
        let g = (n * p.Cout + co) * oplane;
        var b: array<f32, 8>;
        for (var j = 0u; j < 8u; j++) { b[j] = select(0.0, In0[g + idx[j]], valid[j]); }
        let b0 = vec4<f32>(b[0], b[1], b[2], b[3]);
        let b1 = vec4<f32>(b[4], b[5], b[6], b[7]);
        let wk = co * p.Cin * kk + tap;
        for (var r = 0u; r < 8u; r++) {
          let a = In1[wk + ciRow[r]];
          acc[2u * r] += a * b0;
          acc[2u * r + 1u] += a * b1;
        }
      }
    }
  }

  let plane = p.H * p.W;
  for (var r = 0u; r < 8u; r++) {
    let ci = row0 + r;
    if (ci >= p.Cin) { break; }
    let base = (n * p.Cin + ci) * plane + ih * p.W;
    for (var j = 0u; j < 8u; j++) {
      let iw = iwFirst + s * j;
      if (iw < p.W) { Out[base + iw] = acc[2u * r + j / 4u][j % 4u]; }
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn weightGrad(@builtin(global_invocation_id) gid: vec3<u32>) {
  let KK = p.Cin * p.kH * p.kW;
  let col0 = gid.x * 8u;
  let row0 = gid.y * 8u;
  if (col0 >= KK || row0 >= p.Cout) { return; }
  let plane = p.H * p.W;
  let oplane = p.OH * p.OW;

  // Per weight column (ci, kh, kw): the channel offset and the window shift.
  var chan: array<u32, 8>;
  var dh: array<i32, 8>;
  var dw: array<i32, 8>;
  for (var j = 0u; j < 8u; j++) {
    let c = min(col0 + j, KK - 1u);
    let ci = c / (p.kH * p.kW);
    let r = c % (p.kH * p.kW);
    chan[j] = ci * plane;
    dh[j] = i32(r / p.kW) - i32(p.pad);
    dw[j] = i32(r % p.kW) - i32(p.pad);
  }
  var coRow: array<u32, 8>;
  for (var r = 0u; r < 8u; r++) { coRow[r] = min(row0 + r, p.Cout - 1u) * oplane; }

  var acc: array<vec4<f32>, 16>;
  for (var n = 0u; n < p.N; n++) {
    let gImage = n * p.Cout * oplane;
    let xImage = n * p.Cin * plane;
    for (var oh = 0u; oh < p.OH; oh++) {
      for (var ow = 0u; ow < p.OW; ow++) {
        let ihs = i32(oh * p.stride);
        let iws = i32(ow * p.stride);
        var b: array<f32, 8>;
        for (var j = 0u; j < 8u; j++) {
          b[j] = loadX(xImage + chan[j], ihs + dh[j], iws + dw[j]);
        }
        let b0 = vec4<f32>(b[0], b[1], b[2], b[3]);
        let b1 = vec4<f32>(b[4], b[5], b[6], b[7]);
        let g = gImage + oh * p.OW + ow;
        for (var r = 0u; r < 8u; r++) {
          let a = In0[g + coRow[r]];
          acc[2u * r] += a * b0;
          acc[2u * r + 1u] += a * b1;
        }
      }
    }
  }

  for (var r = 0u; r < 8u; r++) {
    let co = row0 + r;
    if (co >= p.Cout) { break; }
    for (var j = 0u; j < 8u; j++) {
      if (col0 + j < KK) { Out[co * KK + col0 + j] = acc[2u * r + j / 4u][j % 4u]; }
    }
  }
}
