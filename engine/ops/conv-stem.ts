// Conv kernels for very few input channels at stride 1 (an image stem: the small ResNet's 1->16
// on 28x28, ResNet-18's 3->64 on 32x32): the forward (shaders/conv-stem-forward.wgsl) and the
// weight gradient (shaders/conv-stem-weightgrad.wgsl), with every per-tap, per-column and
// per-channel step generated here into named values. With one input channel a stem conv does 9
// multiply-adds per output value, so the general kernels, built to share loads among many input
// channels, spend their time on tile set-up and scattered stores; these store (forward) or read
// (weight gradient) the output-sized tensor as vec4 rows and keep everything else in registers.
import forwardSource from '../../shaders/conv-stem-forward.wgsl';
import weightGradSource from '../../shaders/conv-stem-weightgrad.wgsl';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { sum } from './reduce.ts';

// The geometry (kH, kW and stride are in the generated code) and the rows a chunk takes.
const params = {
  N: 'u32', Cin: 'u32', H: 'u32', W: 'u32', Cout: 'u32', OH: 'u32', OW: 'u32',
  kH: 'u32', kW: 'u32', stride: 'u32', pad: 'u32', rowsPerChunk: 'u32',
} as const;

const forwardKernels = declareKernels({
  name: 'conv2d.stem',
  source: forwardSource,
  params,
  defines: { R: 'u32', XV: 'type', OV: 'type', WEIGHTS: 'code', BODY: 'code' },
  entryPoints: { forward: { inputs: { Wt: 'f32', X: 'XV' }, outputs: { Out: 'OV' } } },
});

const weightGradKernels = declareKernels({
  name: 'conv2d.stem.weightGrad',
  source: weightGradSource,
  params,
  defines: { R: 'u32', KH: 'u32', KW: 'u32', YV: 'type', XV: 'type', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dY: 'YV', X: 'XV' }, outputs: { Out: 'f32' } } },
});

/** The most input channels these kernels take (the generated body grows with them). */
export const STEM_MAX_CIN = 4;

/** Whether the stem kernels fit `g`: stride 1, at most STEM_MAX_CIN input channels, a window
 * of at most 5x5. */
export function stemFits(g: ConvGeometry): boolean {
  return g.stride === 1 && g.Cin <= STEM_MAX_CIN && g.kH <= 5 && g.kW <= 5;
}

/** R output channels an invocation (every channel when there are fewer); output rows are split
 * into chunks of `rowsPerChunk` (forward: rows of one map; weight gradient: (n, oh) rows). */
export interface StemTile { R: number; rowsPerChunk: number }

/** Forward tiles worth measuring: 16 and 8 output channels, whole maps an invocation. */
export function stemForwardTiles(g: ConvGeometry): StemTile[] {
  const blocks = g.Cout <= 8 ? [g.Cout] : [16, 8];
  return blocks.map((R) => ({ R, rowsPerChunk: g.OH }));
}

/** Weight-gradient tiles worth measuring: 16 and 8 output channels (fewer with more input
 * channels: the accumulators are R x Cin x taps), the (n, oh) rows split into about 512 chunks. */
export function stemWeightGradTiles(g: ConvGeometry): StemTile[] {
  const most = Math.max(4, Math.floor(16 / g.Cin));
  const blocks = g.Cout <= 4 ? [g.Cout] : [16, 8, 4].filter((r) => r <= most && r < 2 * g.Cout);
  const rows = g.N * g.OH;
  const rowsPerChunk = Math.max(1, Math.ceil(rows / 512));
  return blocks.map((R) => ({ R, rowsPerChunk }));
}

const XYZW = 'xyzw';

/** Code that reads the input columns ow0 - pad .. ow0 + 3 + kW - 1 - pad of one window row into
 * `x${sfx}_${c}`: `colSetup` (once per strip) and `load` (per row; `rowIn`, `rowOff` name the
 * row's in-map flag and element offset, a multiple of 4 where `vec`). */
function columns(KW: number, pad: number, vec: boolean): { colSetup: string[]; load: (sfx: string, rowIn: string, rowOff: string, ind: string) => string[] } {
  const NS = 3 + KW;
  if (!vec) {
    const colSetup: string[] = [];
    for (let c = 0; c < NS; c++) {
      colSetup.push(`let cIn${c} = i32(ow0) + ${c - pad} >= 0 && i32(ow0) + ${c - pad} < i32(p.W);`);
      colSetup.push(`let cOff${c} = select(0u, u32(i32(ow0) + ${c - pad}), cIn${c});`);
    }
    const load = (sfx: string, rowIn: string, rowOff: string, ind: string) =>
      Array.from({ length: NS }, (_, c) => `${ind}let x${sfx}_${c} = select(0.0, X[${rowOff} + cOff${c}], ${rowIn} && cIn${c});`);
    return { colSetup, load };
  }
  // Column c sits in vec4 floor((c - pad) / 4) relative to ow0's, component (c - pad) mod 4;
  // a vec4 of a row whose width is a multiple of 4 is either wholly in the map or wholly out.
  const v0 = Math.floor(-pad / 4);
  const v1 = Math.floor((NS - 1 - pad) / 4);
  const colSetup: string[] = [];
  for (let v = v0; v <= v1; v++) {
    const k = v - v0;
    colSetup.push(`let vIn${k} = i32(ow0 / 4u) + ${v} >= 0 && i32(ow0 / 4u) + ${v} < i32(p.W / 4u);`);
    colSetup.push(`let vOff${k} = select(0u, u32(i32(ow0 / 4u) + ${v}), vIn${k});`);
  }
  const load = (sfx: string, rowIn: string, rowOff: string, ind: string) => {
    const body: string[] = [];
    for (let v = v0; v <= v1; v++) {
      const k = v - v0;
      body.push(`${ind}let xv${sfx}_${k} = select(vec4<f32>(0.0), X[(${rowOff}) / 4u + vOff${k}], ${rowIn} && vIn${k});`);
    }
    for (let c = 0; c < NS; c++) {
      const v = Math.floor((c - pad) / 4);
      body.push(`${ind}let x${sfx}_${c} = xv${sfx}_${v - v0}.${XYZW[c - pad - 4 * v]};`);
    }
    return body;
  };
  return { colSetup, load };
}

/** Code that reads every window row of output row `oh` and makes, per (ci, kh, kw), the vec4 of
 * the strip's 4 pixels' inputs under that tap: `s${ci}_${kh}_${kw}`. */
function windowRows(g: ConvGeometry, vec: boolean, ind: string, load: ReturnType<typeof columns>['load']): string[] {
  const body: string[] = [];
  for (let kh = 0; kh < g.kH; kh++) {
    body.push(`${ind}let ih${kh} = i32(oh) + ${kh - g.pad};`);
    body.push(`${ind}let rIn${kh} = ih${kh} >= 0 && ih${kh} < i32(p.H);`);
    body.push(`${ind}let rOff${kh} = select(0u, u32(ih${kh}), rIn${kh}) * p.W;`);
  }
  for (let ci = 0; ci < g.Cin; ci++) {
    for (let kh = 0; kh < g.kH; kh++) {
      body.push(...load(`${ci}_${kh}`, `rIn${kh}`, `image + ${ci}u * plane + rOff${kh}`, ind));
      for (let kw = 0; kw < g.kW; kw++) {
        const xs = [0, 1, 2, 3].map((j) => `x${ci}_${kh}_${kw + j}`);
        body.push(`${ind}let s${ci}_${kh}_${kw} = vec4<f32>(${xs.join(', ')});`);
      }
    }
  }
  void vec;
  return body;
}

/** Whether rows can be read and written as vec4s: the input's and the output's widths are
 * multiples of 4 (so every row and plane starts on a vec4). */
function rowsAreVec4(g: ConvGeometry): boolean {
  return g.W % 4 === 0 && g.OW % 4 === 0;
}

/** The generated parts of the forward shader. */
export function stemForwardCode(g: ConvGeometry, t: StemTile, flipped: boolean): { WEIGHTS: string; BODY: string } {
  const vec = rowsAreVec4(g);
  const { colSetup, load } = columns(g.kW, g.pad, vec);
  const R = t.R;
  const partial = g.Cout % R !== 0;
  const weights: string[] = colSetup.map((l) => `  ${l}`);
  for (let r = 0; r < R; r++) {
    weights.push(`  let ch${r} = ${partial ? `min(co0 + ${r}u, p.Cout - 1u)` : `co0 + ${r}u`};`);
    for (let ci = 0; ci < g.Cin; ci++) {
      for (let kh = 0; kh < g.kH; kh++) {
        for (let kw = 0; kw < g.kW; kw++) {
          // Flipped: the [Cin, Cout, kH, kW] weight of the conv whose input gradient this is, rotated.
          const idx = flipped
            ? `(${ci}u * p.Cout + ch${r}) * ${g.kH * g.kW}u + ${(g.kH - 1 - kh) * g.kW + (g.kW - 1 - kw)}u`
            : `(ch${r} * p.Cin + ${ci}u) * ${g.kH * g.kW}u + ${kh * g.kW + kw}u`;
          weights.push(`  let w${r}_${ci}_${kh}_${kw} = Wt[${idx}];`);
        }
      }
    }
  }
  if (!vec) for (let j = 0; j < 4; j++) weights.push(`  let ok${j} = ow0 + ${j}u < p.OW;`);
  const ind = '    ';
  const body = windowRows(g, vec, ind, load);
  for (let r = 0; r < R; r++) {
    const terms: string[] = [];
    for (let ci = 0; ci < g.Cin; ci++) for (let kh = 0; kh < g.kH; kh++) for (let kw = 0; kw < g.kW; kw++) terms.push(`s${ci}_${kh}_${kw} * w${r}_${ci}_${kh}_${kw}`);
    body.push(`${ind}let a${r} = ${terms.join(' + ')};`);
    const store: string[] = [];
    store.push(`let o${r} = outImage + (co0 + ${r}u) * oplane + oh * p.OW + ow0;`);
    if (vec) store.push(`Out[o${r} / 4u] = a${r};`);
    else for (let j = 0; j < 4; j++) store.push(`if (ok${j}) { Out[o${r} + ${j}u] = a${r}.${XYZW[j]}; }`);
    if (partial) body.push(`${ind}if (co0 + ${r}u < p.Cout) {`, ...store.map((l) => `${ind}  ${l}`), `${ind}}`);
    else body.push(...store.map((l) => `${ind}${l}`));
  }
  return { WEIGHTS: weights.join('\n'), BODY: body.join('\n') };
}

/** The stem forward (`flipped`: `weight` is [Cin, Cout, kH, kW], read transposed and rotated). */
export function stemForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped: boolean, t: StemTile): Tensor {
  const out = Tensor.empty([g.N, g.Cout, g.OH, g.OW]);
  const vec = rowsAreVec4(g);
  const strips = Math.ceil(g.OW / 4);
  launch(forwardKernels.forward, {
    label: `conv2d.stem ${x.describe()}, ${weight.describe()} k${g.kH}x${g.kW} p${g.pad}${flipped ? ' flipped' : ''} tile ${t.R}/${t.rowsPerChunk}`,
    inputs: { Wt: weight, X: x },
    outputs: { Out: out },
    params: { ...g, rowsPerChunk: t.rowsPerChunk },
    defines: { R: t.R, XV: vec ? 'vec4<f32>' : 'f32', OV: vec ? 'vec4<f32>' : 'f32', ...stemForwardCode(g, t, flipped) },
    workgroups: [Math.ceil((g.N * strips) / 64), Math.ceil(g.Cout / t.R), Math.ceil(g.OH / t.rowsPerChunk)],
  });
  return out;
}

/** The generated parts of the weight-gradient shader. */
export function stemWeightGradCode(g: ConvGeometry, t: StemTile): { ACC: string; BODY: string; STORE: string } {
  const vec = rowsAreVec4(g);
  const { colSetup, load } = columns(g.kW, g.pad, vec);
  const R = t.R;
  const partial = g.Cout % R !== 0;
  const taps = g.kH * g.kW;
  const acc: string[] = [];
  for (let r = 0; r < R; r++) {
    acc.push(`  let ch${r} = ${partial ? `min(co0 + ${r}u, p.Cout - 1u)` : `(co0 + ${r}u)`} * oplane;`);
    for (let ci = 0; ci < g.Cin; ci++) for (let tap = 0; tap < taps; tap++) acc.push(`  var a${r}_${ci}_${tap} = 0.0;`);
  }
  const ind = '      ';
  const body = colSetup.map((l) => `${ind}${l}`);
  for (let r = 0; r < R; r++) {
    if (vec) body.push(`${ind}let d${r} = dY[(dyRow + ch${r} + ow0) / 4u];`);
    else {
      // Pixels past the row read as zero (from the row's last pixel).
      const ds = [0, 1, 2, 3].map((j) => `select(0.0, dY[dyRow + ch${r} + min(ow0 + ${j}u, p.OW - 1u)], ow0 + ${j}u < p.OW)`);
      body.push(`${ind}let d${r} = vec4<f32>(${ds.join(', ')});`);
    }
  }
  body.push(...windowRows(g, vec, ind, load));
  for (let r = 0; r < R; r++) {
    for (let ci = 0; ci < g.Cin; ci++) for (let kh = 0; kh < g.kH; kh++) for (let kw = 0; kw < g.kW; kw++) {
      body.push(`${ind}a${r}_${ci}_${kh * g.kW + kw} += dot(d${r}, s${ci}_${kh}_${kw});`);
    }
  }
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    const lines = [`let o${r} = outBase + (co0 + ${r}u) * taps;`];
    for (let ci = 0; ci < g.Cin; ci++) for (let tap = 0; tap < taps; tap++) lines.push(`Out[o${r} + ${ci * taps + tap}u] = a${r}_${ci}_${tap};`);
    if (partial) store.push(`  if (co0 + ${r}u < p.Cout) {`, ...lines.map((l) => `    ${l}`), '  }');
    else store.push(...lines.map((l) => `  ${l}`));
  }
  return { ACC: acc.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

/** dL/dW with the stem kernel: partial slabs per chunk of rows, then their sum. */
export function stemWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, t: StemTile): Tensor {
  const vec = rowsAreVec4(g);
  const rows = g.N * g.OH;
  const chunks = Math.ceil(rows / t.rowsPerChunk);
  const shape = [g.Cout, g.Cin, g.kH, g.kW];
  const out = Tensor.empty(chunks === 1 ? shape : [chunks, ...shape]);
  launch(weightGradKernels.weightGrad, {
    label: `conv2d.stem.weightGrad ${gradOut.describe()}, ${x.describe()} k${g.kH}x${g.kW} p${g.pad} tile ${t.R}/${t.rowsPerChunk}`,
    inputs: { dY: gradOut, X: x },
    outputs: { Out: out },
    params: { ...g, rowsPerChunk: t.rowsPerChunk },
    defines: { R: t.R, KH: g.kH, KW: g.kW, YV: vec ? 'vec4<f32>' : 'f32', XV: vec ? 'vec4<f32>' : 'f32', ...stemWeightGradCode(g, t) },
    workgroups: [Math.ceil(chunks / 64), Math.ceil(g.Cout / t.R), 1],
  });
  if (chunks === 1) return out;
  const total = sum(out, [0]);
  out.dispose();
  return total;
}
