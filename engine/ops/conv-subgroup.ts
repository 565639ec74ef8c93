// The subgroup conv kernels (shaders/conv-subgroup-*.wgsl): the forward conv (and through a
// flipped weight the stride-1 input gradient), the input gradient of any stride (the
// transposed conv) and the weight gradient, for adapters whose subgroups have a fixed size L of
// 8 (lavapipe) or 4 (SwiftShader): the code is generated for L lanes (`subgroupConvSize`); the
// ops offer the kernels only where L is 8 (`subgroupConvOffered`). The shaders' inner steps are unrolled
// here, per tile shape and window, into the code defines; the tile shapes come from
// engine/tuning.ts.
import forwardSource from '../../shaders/conv-subgroup-forward.wgsl';
import weightGradSource from '../../shaders/conv-subgroup-weightgrad.wgsl';
import inputGradSource from '../../shaders/conv-subgroup-inputgrad.wgsl';
import weightGradRowsSource from '../../shaders/conv-subgroup-weightgrad-rows.wgsl';
import weightGradRollingSource from '../../shaders/conv-subgroup-weightgrad-rolling.wgsl';
import padSource from '../../shaders/conv-weightgrad-pad.wgsl';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams, sumWeightGradSlices } from './conv-common.ts';
import { grid1d, launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { packWeights } from './conv-pack.ts';
import { fixedSubgroupSize } from '../device.ts';

// Input rows read as XV (f32, vec2 or vec4), outputs stored as OV.
const forwardKernels = declareKernels({
  name: 'conv2d.subgroup',
  source: forwardSource,
  params: { ...convGeometryParams, CP: 'u32' },
  defines: { R: 'u32', TR: 'u32', TC: 'u32', KH: 'u32', KW: 'u32', STRIDE: 'u32', VX: 'u32', LEAD: 'u32', NV: 'u32', XV: 'type', OV: 'type', WOFF: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { forward: { inputs: { Wp: 'vec4<f32>', X: 'XV' }, outputs: { Out: 'OV' } } },
});

const weightGradKernels = declareKernels({
  name: 'conv2d.subgroup',
  source: weightGradSource,
  params: { ...convGeometryParams, rowsPerChunk: 'u32' },
  defines: { R: 'u32', PX: 'u32', KH: 'u32', KW: 'u32', STRIDE: 'u32', WG: 'u32', DYOFF: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dY: 'f32', X: 'f32' }, outputs: { Out: 'f32' } } },
});

const weightGradRollingKernels = declareKernels({
  name: 'conv2d.subgroup',
  source: weightGradRollingSource,
  params: { ...convGeometryParams, imagesPerChunk: 'u32', Hp: 'u32', Wp: 'u32', OWp: 'u32', top: 'u32', left: 'u32' },
  defines: { R: 'u32', PX: 'u32', KH: 'u32', KW: 'u32', STRIDE: 'u32', WG: 'u32', DYOFF: 'code', ACC: 'code', FIRST: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dYp: 'vec4<f32>', Xp: 'vec4<f32>' }, outputs: { Out: 'f32' } } },
});

const weightGradRowsKernels = declareKernels({
  name: 'conv2d.subgroup',
  source: weightGradRowsSource,
  params: { ...convGeometryParams, rowsPerChunk: 'u32', Hp: 'u32', Wp: 'u32', OWp: 'u32' },
  defines: { R: 'u32', PX: 'u32', KH: 'u32', KW: 'u32', STRIDE: 'u32', LANES: 'u32', DYOFF: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dYp: 'vec4<f32>', Xp: 'vec4<f32>' }, outputs: { Out: 'f32' } } },
});

const padKernels = declareKernels({
  name: 'conv2d.weightGradPad',
  source: padSource,
  params: { planes: 'u32', inH: 'u32', inW: 'u32', outH: 'u32', top: 'u32', left: 'u32' },
  defines: { OUTV: 'u32', BODY: 'code' },
  entryPoints: { pad: { inputs: { In: 'vec4<f32>' }, outputs: { Out: 'vec4<f32>' } } },
});

const inputGradKernels = declareKernels({
  name: 'conv2d.subgroup',
  source: inputGradSource,
  params: { ...convGeometryParams, CP: 'u32' },
  defines: { R: 'u32', TR: 'u32', TC: 'u32', STRIDE: 'u32', NR: 'u32', DH0: 'i32', VX: 'u32', NV: 'u32', VFIRST: 'i32', YV: 'type', WOFF: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { inputGrad: { inputs: { Wp: 'vec4<f32>', dY: 'YV' }, outputs: { Out: 'f32' } } },
});

/** Input-gradient tile: R input channels x (TR x TC) blocks of stride x stride input pixels
 * per invocation; R a multiple of 4 or (one block of channels) at least Cin. `rowVector`: dY
 * rows are read as vectors of 2 or 4 (where `dyRowVectorFits`). */
export interface InputGradTile { R: number; TR: number; TC: number; rowVector?: 2 | 4 }

/** Whether an input-gradient tile of TC blocks across can read the dY rows of `g` as aligned
 * vectors of `v` (every tile's dY window then starts at the same lane of a vector). */
export function dyRowVectorFits(v: 2 | 4, TC: number, g: ConvGeometry): boolean {
  return g.OW % v === 0 && TC % v === 0;
}

/** Forward tile: R output channels x (TR x TC) output pixels per invocation; R a multiple of 4
 * or (one block of channels) at least Cout. `rowVector`: the input rows are read as vectors of
 * 2 or 4 (where `rowVectorFits`), else as single floats. */
export interface ForwardTile { R: number; TR: number; TC: number; rowVector?: 2 | 4 }

/** Whether a tile of TC output columns can read the input rows of `g` as aligned vectors of `v`. */
export function rowVectorFits(v: 2 | 4, TC: number, g: ConvGeometry): boolean {
  return g.W % v === 0 && (TC * g.stride) % v === 0;
}

/** Weight-gradient tile: R output channels x all taps per invocation (one input channel), PX
 * output pixels a step, `chunks` slices of the (n, oh) rows, WG invocations a workgroup.
 * `packed`: read vec4-aligned dY and X (or zero-padded copies, conv-weightgrad-pad.wgsl), either
 * `rolling`, lanes along input channels and each window's rows carried to the next output row's
 * (conv-subgroup-weightgrad-rolling.wgsl; its chunks are slices of the images), or `rows`,
 * lanes along the rows of the sum for few input channels (conv-subgroup-weightgrad-rows.wgsl, a
 * workgroup of one subgroup); PX and PX * stride are then multiples of 4. */
export interface WeightGradTile { R: number; PX: number; chunks: number; WG: number; packed?: 'rows' | 'rolling' }

let lanesOverride: 4 | null = null;

/** The lanes L the subgroup conv kernels are generated for here: the adapter's subgroup size
 * where it is fixed at 4 (SwiftShader) or 8 (lavapipe), else 0 (the kernels do not run). The
 * kernels take their shared operands from lanes 0 to L-1 only, so L = 4 code is also correct,
 * if wasteful, on subgroups of 8: `forceSubgroupConvLanes(4)` makes lavapipe run it (tests). */
export function subgroupConvSize(): 0 | 4 | 8 {
  const size = fixedSubgroupSize();
  if (size !== 4 && size !== 8) return 0;
  return lanesOverride ?? size;
}

/** Whether the ops offer the subgroup conv kernels here: only where subgroups are 8 wide
 * (lavapipe, where they are the fastest design). On SwiftShader (4 lanes) they were measured
 * no faster than the unrolled kernels (forward 3x3 s1 on 28x28, batch 16: 1.14-1.2x slower;
 * weight gradient 8->16 on 14x14: 1.04x slower; strided input gradient 16->8 on 28x28: 1.05x
 * slower), each pipeline took some 40 s to compile there,
 * and the stride-2 forward lost the device (2026-12-02), so there the 4-lane code runs only in
 * lavapipe's tests (`forceSubgroupConvLanes`). */
export function subgroupConvOffered(): boolean {
  return fixedSubgroupSize() === 8;
}

/** Makes the subgroup conv kernels use 4 lanes on an adapter with fixed subgroups of 4 or 8
 * (null: the adapter's size), so that Node's tests check the code SwiftShader runs. */
export function forceSubgroupConvLanes(lanes: 4 | null): void {
  lanesOverride = lanes;
}

function lanesHere(op: string): 4 | 8 {
  const L = subgroupConvSize();
  if (L === 0) throw new Error(`conv2d.subgroup.${op}: needs subgroups of a fixed size 4 or 8 (this adapter has none)`);
  return L;
}

const xyzw = 'xyzw';

/** The unrolled parts of conv-subgroup-forward.wgsl for one tile at `g`, and the input vector
 * layout: the window's NS columns from lane LEAD of NV aligned vectors of VX (W a multiple of
 * VX); vectors that lie outside the map for every tile (a map one tile wide) are zeros without a
 * load. Outputs are stored as vectors of VO = 4 or 2 where every VO columns of a tile row are
 * inside or outside the map together, else one by one. */
function forwardCode(t: ForwardTile, g: ConvGeometry, L: number): { VX: number; LEAD: number; NV: number; VO: number; WOFF: string; ACC: string; BODY: string; STORE: string } {
  const { R, TR, TC } = t;
  const KH = g.kH;
  const KW = g.kW;
  const S = g.stride;
  const C = TR * TC;
  const groups = Math.ceil(R / 4);
  const WV = KH * KW * groups;
  const NR = (TR - 1) * S + KH;
  const NS = (TC - 1) * S + KW;
  const loads = Math.ceil(WV / L);
  const woff: string[] = [];
  for (let i = 0; i < loads; i++) {
    woff.push(`  let wIdx${i} = min(lane + ${L * i}u, ${WV - 1}u);`);
    woff.push(`  let wOff${i} = (wIdx${i} / ${groups}u) * (p.CP / 4u) + min(co0 / 4u + wIdx${i} % ${groups}u, p.CP / 4u - 1u);`);
  }
  // Accumulators hold 4 pixels each; a last partial one (C not a multiple of 4) multiplies zeros.
  const quads = Math.ceil(C / 4);
  const acc: string[] = [];
  for (let r = 0; r < R; r++) for (let q = 0; q < quads; q++) acc.push(`  var a${r}_${q} = vec4<f32>(0.0);`);
  const body: string[] = [];
  for (let i = 0; i < loads; i++) body.push(`    let wv${i} = Wp[wBase + wOff${i}];`);
  // The input under the windows, x{row}_{column}.
  const VX = t.rowVector ?? 1;
  const LEAD = (VX - (g.pad % VX)) % VX;
  const NV = Math.ceil((LEAD + NS) / VX);
  const vectorsAcross = g.W / VX;
  // With one tile across, v0 is the same for every tile: -(pad + LEAD) / VX.
  const oneTileAcross = Math.ceil(g.OW / TC) === 1;
  const v0 = -(g.pad + LEAD) / VX;
  const zero = VX === 1 ? '0.0' : `vec${VX}<f32>(0.0)`;
  for (let i = 0; i < NR; i++) {
    for (let v = 0; v < NV; v++) {
      const outside = oneTileAcross && (v0 + v < 0 || v0 + v >= vectorsAcross);
      body.push(outside ? `    let xv${i}_${v} = ${zero};` : `    let xv${i}_${v} = select(${zero}, X[chan + rowOff[${i}] + vecOff[${v}]], rowIn[${i}] && vecIn[${v}]);`);
    }
    for (let s = 0; s < NS; s++) {
      const v = Math.floor((LEAD + s) / VX);
      body.push(`    let x${i}_${s} = xv${i}_${v}${VX === 1 ? '' : `.${xyzw[(LEAD + s) % VX]}`};`);
    }
  }
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const tap = kh * KW + kw;
      for (let q = 0; q < quads; q++) {
        const xs = [0, 1, 2, 3].map((k) => {
          const j = 4 * q + k;
          return j < C ? `x${Math.floor(j / TC) * S + kh}_${(j % TC) * S + kw}` : '0.0';
        });
        body.push(`    let b${tap}_${q} = vec4<f32>(${xs.join(', ')});`);
      }
      for (let gr = 0; gr < groups; gr++) {
        const idx = tap * groups + gr;
        body.push(`    let w${tap}_${gr} = subgroupBroadcast(wv${Math.floor(idx / L)}, ${idx % L}u);`);
        for (let c = 0; c < 4 && 4 * gr + c < R; c++) {
          for (let q = 0; q < quads; q++) body.push(`    a${4 * gr + c}_${q} += w${tap}_${gr}.${xyzw[c]} * b${tap}_${q};`);
        }
      }
    }
  }
  const VO = [4, 2].find((v) => TC % v === 0 && g.OW % v === 0) ?? 1;
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    store.push(`  if (co0 + ${r}u < p.Cout) {`);
    if (VO === 1) {
      store.push(`    let o${r} = outBase + (co0 + ${r}u) * oplane;`);
      for (let j = 0; j < C; j++) {
        const rt = Math.floor(j / TC);
        const tc = j % TC;
        store.push(`    if (oh0 + ${rt}u < p.OH && ow0 + ${tc}u < p.OW) { Out[o${r} + (oh0 + ${rt}u) * p.OW + ow0 + ${tc}u] = a${r}_${j >> 2}.${xyzw[j & 3]}; }`);
      }
    } else {
      store.push(`    let o${r} = (outBase + (co0 + ${r}u) * oplane) / ${VO}u;`);
      for (let rt = 0; rt < TR; rt++) {
        for (let k = 0; k < TC / VO; k++) {
          // Pixel j of the tile starts the vector: accumulator j / 4 from component j % 4.
          const j = rt * TC + k * VO;
          const value = VO === 4 ? `a${r}_${j >> 2}` : `a${r}_${j >> 2}.${xyzw.slice(j & 3, (j & 3) + 2)}`;
          store.push(`    if (oh0 + ${rt}u < p.OH && ow0 + ${k * VO}u < p.OW) { Out[o${r} + ((oh0 + ${rt}u) * p.OW + ow0) / ${VO}u + ${k}u] = ${value}; }`);
        }
      }
    }
    store.push('  }');
  }
  return { VX, LEAD, NV, VO, WOFF: woff.join('\n'), ACC: acc.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

/** Along one axis of a conv (window k, stride s, padding pad): for each input phase
 * (index mod s), the taps that reach it and the dY offset each reads, relative to the block. */
export function phaseTaps(k: number, s: number, pad: number): { tap: number; d: number }[][] {
  return Array.from({ length: s }, (_, ph) => {
    const taps: { tap: number; d: number }[] = [];
    for (let tap = 0; tap < k; tap++) {
      if ((ph + pad - tap) % s === 0) taps.push({ tap, d: (ph + pad - tap) / s });
    }
    return taps;
  });
}

/** The dY window of one block along an axis: its first offset and its width. */
export function windowOf(phases: { d: number }[][]): { first: number; width: number } {
  const ds = phases.flat().map((t) => t.d);
  const first = Math.min(...ds);
  return { first, width: Math.max(...ds) - first + 1 };
}

/** The accumulator of a transposed-conv tile (subgroup and unrolled kernels alike): channel
 * group q, block (bt, bu), phase (ph, pw). */
export const transposedAccName = (q: number, bt: number, bu: number, ph: number, pw: number): string => `a${q}_${bt}_${bu}_${ph}_${pw}`;

/** STORE of a transposed-conv tile: R channels x (TR x TC) blocks of S x S input pixels from
 * block (a0, b0), those inside the map. */
export function transposedConvStore(R: number, TR: number, TC: number, S: number): string {
  const store: string[] = [];
  for (let bt = 0; bt < TR; bt++) for (let ph = 0; ph < S; ph++) {
    store.push(`  let ih${bt}_${ph} = (a0 + ${bt}u) * ${S}u + ${ph}u;`);
  }
  for (let bu = 0; bu < TC; bu++) for (let pw = 0; pw < S; pw++) {
    store.push(`  let iw${bu}_${pw} = (b0 + ${bu}u) * ${S}u + ${pw}u;`);
  }
  for (let r = 0; r < R; r++) {
    store.push(`  if (ci0 + ${r}u < p.Cin) {`);
    store.push(`    let o${r} = outBase + (ci0 + ${r}u) * plane;`);
    for (let bt = 0; bt < TR; bt++) for (let ph = 0; ph < S; ph++) for (let bu = 0; bu < TC; bu++) for (let pw = 0; pw < S; pw++) {
      const ih = `ih${bt}_${ph}`;
      const iw = `iw${bu}_${pw}`;
      store.push(`    if (${ih} < p.H && ${iw} < p.W) { Out[o${r} + ${ih} * p.W + ${iw}] = ${transposedAccName(r >> 2, bt, bu, ph, pw)}.${xyzw[r & 3]}; }`);
    }
    store.push('  }');
  }
  return store.join('\n');
}

/** The unrolled parts of conv-subgroup-inputgrad.wgsl for one tile and geometry, and the dY
 * window they read: NR rows from offset DH0; NS columns from offset DW0, which is lane LEAD of
 * the vector VFIRST (relative to the tile's first block, in vectors of VX; NV of them). */
function inputGradCode(t: InputGradTile, g: ConvGeometry, L: number): { NR: number; DH0: number; VX: number; NV: number; VFIRST: number; YV: string; WOFF: string; ACC: string; BODY: string; STORE: string } {
  const { R, TR, TC } = t;
  const S = g.stride;
  const KK = g.kH * g.kW;
  const rows = phaseTaps(g.kH, S, g.pad);
  const cols = phaseTaps(g.kW, S, g.pad);
  const rowWindow = windowOf(rows);
  const colWindow = windowOf(cols);
  const NR = TR - 1 + rowWindow.width;
  const NS = TC - 1 + colWindow.width;
  const groups = Math.ceil(R / 4);
  const WV = KK * groups;
  const loads = Math.ceil(WV / L);
  const woff: string[] = [];
  for (let i = 0; i < loads; i++) {
    woff.push(`  let wIdx${i} = min(lane + ${L * i}u, ${WV - 1}u);`);
    woff.push(`  let wOff${i} = (wIdx${i} / ${groups}u) * (p.CP / 4u) + min(ci0 / 4u + wIdx${i} % ${groups}u, p.CP / 4u - 1u);`);
  }
  // One accumulator (4 channels) per channel group, block and phase.
  const acc: string[] = [];
  const body: string[] = [];
  for (let i = 0; i < loads; i++) body.push(`    let wv${i} = Wp[wBase + wOff${i}];`);
  const VX = t.rowVector ?? 1;
  const VFIRST = Math.floor(colWindow.first / VX);
  const LEAD = colWindow.first - VFIRST * VX;
  const NV = Math.ceil((LEAD + NS) / VX);
  for (let i = 0; i < NR; i++) {
    if (VX === 1) {
      for (let j = 0; j < NS; j++) body.push(`    let y${i}_${j} = select(0.0, dY[chan + rowOff[${i}] + colOff[${j}]], rowIn[${i}] && colIn[${j}]);`);
      continue;
    }
    const zero = `vec${VX}<f32>(0.0)`;
    for (let v = 0; v < NV; v++) body.push(`    let yv${i}_${v} = select(${zero}, dY[chan + rowOff[${i}] + colOff[${v}]], rowIn[${i}] && colIn[${v}]);`);
    for (let j = 0; j < NS; j++) body.push(`    let y${i}_${j} = yv${i}_${Math.floor((LEAD + j) / VX)}.${xyzw[(LEAD + j) % VX]};`);
  }
  for (let q = 0; q < groups; q++) {
    for (let bt = 0; bt < TR; bt++) for (let bu = 0; bu < TC; bu++) for (let ph = 0; ph < S; ph++) for (let pw = 0; pw < S; pw++) {
      acc.push(`  var ${transposedAccName(q, bt, bu, ph, pw)} = vec4<f32>(0.0);`);
    }
  }
  for (let ph = 0; ph < S; ph++) {
    for (const rt of rows[ph]) {
      for (let pw = 0; pw < S; pw++) {
        for (const ct of cols[pw]) {
          // The packed weight holds tap KK-1-tap (conv-pack.wgsl's FLIPPED order).
          const packedTap = KK - 1 - (rt.tap * g.kW + ct.tap);
          for (let q = 0; q < groups; q++) {
            const idx = packedTap * groups + q;
            const w = `w${rt.tap}_${ct.tap}_${q}`;
            body.push(`    let ${w} = subgroupBroadcast(wv${Math.floor(idx / L)}, ${idx % L}u);`);
            for (let bt = 0; bt < TR; bt++) for (let bu = 0; bu < TC; bu++) {
              body.push(`    ${transposedAccName(q, bt, bu, ph, pw)} += ${w} * y${bt + rt.d - rowWindow.first}_${bu + ct.d - colWindow.first};`);
            }
          }
        }
      }
    }
  }
  const YV = VX === 1 ? 'f32' : `vec${VX}<f32>`;
  return { NR, DH0: rowWindow.first, VX, NV, VFIRST, YV, WOFF: woff.join('\n'), ACC: acc.join('\n'), BODY: body.join('\n'), STORE: transposedConvStore(R, TR, TC, S) };
}

/** The weight-gradient kernels' accumulators: a{r}_{tap}, one per output channel of the
 * workgroup's block and tap. */
function weightGradAccumulators(R: number, KK: number): string {
  const acc: string[] = [];
  for (let r = 0; r < R; r++) for (let tap = 0; tap < KK; tap++) acc.push(`  var a${r}_${tap} = 0.0;`);
  return acc.join('\n');
}

/** The multiply-adds of output channel r in one step of PX output pixels: dY value `y(px)`
 * times the input under tap (kh, kw) of that pixel, `x(kh, column)`. */
function weightGradMultiplyAdds(r: number, PX: number, KH: number, KW: number, S: number,
  y: (px: number) => string, x: (kh: number, column: number) => string): string[] {
  const lines: string[] = [];
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const terms = Array.from({ length: PX }, (_, px) => `${y(px)} * ${x(kh, px * S + kw)}`);
      lines.push(`      a${r}_${kh * KW + kw} += ${terms.join(' + ')};`);
    }
  }
  return lines;
}

/** Stores values `{prefix}{r}_{tap}` into this lane's input channel of slice Out[wid.z]. */
function weightGradStore(R: number, KK: number, prefix: string): string {
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    store.push(`  if (co0 + ${r}u < p.Cout) {`);
    store.push(`    let o${r} = slice + ((co0 + ${r}u) * p.Cin + ci) * KK;`);
    for (let tap = 0; tap < KK; tap++) store.push(`    Out[o${r} + ${tap}u] = ${prefix}${r}_${tap};`);
    store.push('  }');
  }
  return store.join('\n');
}

/** The unrolled parts of conv-subgroup-weightgrad.wgsl for one tile and window. */
function weightGradCode(t: WeightGradTile, KH: number, KW: number, S: number, L: number): { DYOFF: string; ACC: string; BODY: string; STORE: string } {
  const { R, PX } = t;
  const KK = KH * KW;
  const NS = (PX - 1) * S + KW;
  const values = R * PX;
  const loads = Math.ceil(values / L);
  const dyoff: string[] = [];
  for (let i = 0; i < loads; i++) {
    // Lane `lane` loads dY element e = lane + L i of the step: channel e / PX, pixel e % PX.
    dyoff.push(`  let dyE${i} = min(lane + ${L * i}u, ${values - 1}u);`);
    dyoff.push(`  let dyOk${i} = co0 + dyE${i} / ${PX}u < p.Cout;`);
    dyoff.push(`  let dyOff${i} = select(0u, (co0 + dyE${i} / ${PX}u) * oplane, dyOk${i});`);
    dyoff.push(`  let dyPx${i} = dyE${i} % ${PX}u;`);
  }
  const body: string[] = [];
  for (let i = 0; i < loads; i++) {
    body.push(`      let dOk${i} = dyOk${i} && ow0 + dyPx${i} < p.OW;`);
    body.push(`      let d${i} = select(0.0, dY[select(0u, dyRow + dyOff${i} + ow0 + dyPx${i}, dOk${i})], dOk${i});`);
  }
  for (let s = 0; s < NS; s++) {
    body.push(`      let iw${s} = iwStart + ${s};`);
    body.push(`      let cIn${s} = iw${s} >= 0 && iw${s} < i32(p.W);`);
    for (let kh = 0; kh < KH; kh++) {
      body.push(`      let x${kh}_${s} = select(0.0, X[select(0u, rowOff[${kh}] + u32(iw${s}), cIn${s})], rowIn[${kh}] && cIn${s});`);
    }
  }
  for (let r = 0; r < R; r++) {
    for (let px = 0; px < PX; px++) {
      const e = r * PX + px;
      body.push(`      let y${r}_${px} = subgroupBroadcast(d${Math.floor(e / L)}, ${e % L}u);`);
    }
    body.push(...weightGradMultiplyAdds(r, PX, KH, KW, S, (px) => `y${r}_${px}`, (kh, col) => `x${kh}_${col}`));
  }
  return { DYOFF: dyoff.join('\n'), ACC: weightGradAccumulators(R, KK), BODY: body.join('\n'), STORE: weightGradStore(R, KK, 'a') };
}

/** The unrolled parts of conv-subgroup-weightgrad-rolling.wgsl for one tile and window: the
 * window's first KH - S rows are the carried variables c{kh}_{j}, loaded by FIRST and, after a
 * step's multiply-adds, taken from that step's rows S on. `leads`: X is read unpadded, window
 * row kh from lane leads[kh] of its first vec4, the loads masked to X's rows and columns; null:
 * X is the padded copy. */
function weightGradRollingCode(t: WeightGradTile, KH: number, KW: number, S: number, L: number, leads: number[] | null): { DYOFF: string; ACC: string; FIRST: string; BODY: string; STORE: string } {
  const { R, PX } = t;
  const KK = KH * KW;
  const NS = (PX - 1) * S + KW;
  const lead = (kh: number) => leads?.[kh] ?? 0;
  const NV = (kh: number) => Math.ceil((lead(kh) + NS) / 4);
  const quarters = PX / 4;
  const vecs = R * quarters;
  const loads = Math.ceil(vecs / L);
  const carried = Math.max(KH - S, 0);
  const dyoff: string[] = [];
  for (let i = 0; i < loads; i++) {
    // Lane `lane` loads dY vec4 e = lane + L i of the step: channel e / quarters (clamped: the
    // accumulators of channels past Cout are never stored), pixels 4 (e % quarters) on.
    dyoff.push(`  let dyE${i} = min(lane + ${L * i}u, ${vecs - 1}u);`);
    dyoff.push(`  let dyOff${i} = min(co0 + dyE${i} / ${quarters}u, p.Cout - 1u) * dyPlane + dyE${i} % ${quarters}u;`);
  }
  const load = (kh: number, j: number) => {
    const at = `Xp[((xe + ${kh}u * p.Wp - ${lead(kh)}u) >> 2u) + ${j}u]`;
    return leads === null ? at : `select(vec4<f32>(0.0), ${at}, m${lead(kh)}_${j} & vec4<bool>(u32(ih + ${kh}) < p.H))`;
  };
  const first: string[] = [];
  if (leads !== null) {
    // Which lanes of vec4 j hold columns of X, for each lead.
    for (const l of new Set(leads)) {
      for (let j = 0; j < Math.ceil((l + NS) / 4); j++) {
        const lanes = [0, 1, 2, 3].map((c) => `u32(iw0 + ${4 * j + c - l}) < p.W`);
        first.push(`      let m${l}_${j} = vec4<bool>(${lanes.join(', ')});`);
      }
    }
  }
  for (let kh = 0; kh < carried; kh++) {
    for (let j = 0; j < NV(kh); j++) first.push(`      var c${kh}_${j} = ${load(kh, j)};`);
  }
  const body: string[] = [];
  for (let i = 0; i < loads; i++) body.push(`      let d${i} = dYp[dyStep + dyOff${i}];`);
  for (let kh = carried; kh < KH; kh++) {
    for (let j = 0; j < NV(kh); j++) body.push(`      let v${kh}_${j} = ${load(kh, j)};`);
  }
  const row = (kh: number) => (kh < carried ? 'c' : 'v') + kh;
  const x = (kh: number, s: number) => `${row(kh)}_${(lead(kh) + s) >> 2}.${xyzw[(lead(kh) + s) & 3]}`;
  for (let r = 0; r < R; r++) {
    for (let px = 0; px < PX; px++) {
      const e = r * quarters + (px >> 2);
      body.push(`      let y${r}_${px} = subgroupBroadcast(d${Math.floor(e / L)}.${xyzw[px & 3]}, ${e % L}u);`);
    }
    body.push(...weightGradMultiplyAdds(r, PX, KH, KW, S, (px) => `y${r}_${px}`, x));
  }
  // In increasing kh: c{kh} takes row kh + S, which is carried (not yet overwritten) or new.
  for (let kh = 0; kh < carried; kh++) {
    for (let j = 0; j < NV(kh); j++) body.push(`      c${kh}_${j} = ${row(kh + S)}_${j};`);
  }
  if (first.length === 0) first.push('      // Nothing carried: the window is no taller than the stride.');
  return { DYOFF: dyoff.join('\n'), ACC: weightGradAccumulators(R, KK), FIRST: first.join('\n'), BODY: body.join('\n'), STORE: weightGradStore(R, KK, 'a') };
}

/** The unrolled parts of conv-subgroup-weightgrad-rows.wgsl for one tile and window. */
function weightGradRowsCode(t: WeightGradTile, KH: number, KW: number, S: number): { DYOFF: string; ACC: string; BODY: string; STORE: string } {
  const { R, PX } = t;
  const KK = KH * KW;
  const NV = Math.ceil(((PX - 1) * S + KW) / 4);
  const dyoff: string[] = [];
  // Channels past Cout read the last one: their sums are never stored.
  for (let r = 0; r < R; r++) dyoff.push(`  let dyc${r} = min(co0 + ${r}u, p.Cout - 1u) * dyPlane;`);
  const body: string[] = [];
  for (let r = 0; r < R; r++) {
    for (let q = 0; q < PX / 4; q++) body.push(`      let d${r}_${q} = select(vec4<f32>(0.0), dYp[dyStep + dyc${r} + ${q}u], live);`);
  }
  for (let kh = 0; kh < KH; kh++) {
    for (let j = 0; j < NV; j++) body.push(`      let v${kh}_${j} = Xp[xStep + ${kh}u * xRowStride + ${j}u];`);
  }
  const x = (kh: number, s: number) => `v${kh}_${s >> 2}.${xyzw[s & 3]}`;
  for (let r = 0; r < R; r++) {
    body.push(...weightGradMultiplyAdds(r, PX, KH, KW, S, (px) => `d${r}_${px >> 2}.${xyzw[px & 3]}`, x));
  }
  const sums: string[] = [];
  for (let r = 0; r < R; r++) for (let tap = 0; tap < KK; tap++) sums.push(`  let s${r}_${tap} = subgroupAdd(a${r}_${tap});`);
  sums.push('  if (lane != 0u) { return; }');
  return { DYOFF: dyoff.join('\n'), ACC: weightGradAccumulators(R, KK), BODY: body.join('\n'), STORE: [...sums, weightGradStore(R, KK, 's')].join('\n') };
}

/** A zero-padded copy of `t` ([planes, inH, inW]) as [planes, outH, outW], shifted by (top,
 * left); outW a multiple of 4. */
function padPlanes(t: Tensor, planes: number, inH: number, inW: number, outH: number, outW: number, top: number, left: number): Tensor {
  const OUTV = outW / 4;
  const body: string[] = [];
  for (let j = 0; j <= OUTV; j++) body.push(`  let v${j} = In[u32(max(q + ${j}, 0))];`);
  const f = (k: number) => `v${k >> 2}.${xyzw[k & 3]}`;
  for (let c = 0; c < outW; c++) {
    body.push(`  let ok${c} = rowIn && c0 + ${c} >= 0 && c0 + ${c} < i32(p.inW);`);
    body.push(`  let o${c} = select(0.0, select(select(${f(c)}, ${f(c + 1)}, odd), select(${f(c + 2)}, ${f(c + 3)}, odd), high), ok${c});`);
  }
  for (let j = 0; j < OUTV; j++) body.push(`  Out[out0 + ${j}u] = vec4<f32>(o${4 * j}, o${4 * j + 1}, o${4 * j + 2}, o${4 * j + 3});`);
  const out = Tensor.empty([planes, outH, outW]);
  launch(padKernels.pad, {
    label: `conv2d.weightGradPad ${t.describe()} to ${outH}x${outW}`,
    inputs: { In: t },
    outputs: { Out: out },
    params: { planes, inH, inW, outH, top, left },
    defines: { OUTV, BODY: body.join('\n') },
    workgroups: grid1d(planes * outH, 64),
  });
  return out;
}

/** Forward conv with the subgroup kernel. `flipped`: `weight` is the [Cin, Cout, kH, kW] weight
 * of the conv whose stride-1 input gradient this computes (read transposed and rotated). */
export function subgroupForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped: boolean, tile: ForwardTile): Tensor {
  if (tile.rowVector && !rowVectorFits(tile.rowVector, tile.TC, g)) {
    throw new RangeError(`conv2d: reading input rows as vec${tile.rowVector}s needs W and TC * stride to be multiples of ${tile.rowVector} (W ${g.W}, tile ${tile.R}x${tile.TR}x${tile.TC}, stride ${g.stride})`);
  }
  const { packed, CP } = packWeights(weight, g, flipped);
  const out = Tensor.empty([g.N, g.Cout, g.OH, g.OW]);
  const tiles = g.N * Math.ceil(g.OH / tile.TR) * Math.ceil(g.OW / tile.TC);
  const { VX, VO, ...code } = forwardCode(tile, g, lanesHere('forward'));
  launch(forwardKernels.forward, {
    label: `conv2d.subgroup.forward ${x.describe()}, ${weight.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad}${flipped ? ' flipped' : ''} tile ${tile.R}x${tile.TR}x${tile.TC}${VX > 1 ? ` vec${VX}` : ''}`,
    inputs: { Wp: packed, X: x },
    outputs: { Out: out },
    params: { ...g, CP },
    defines: {
      R: tile.R, TR: tile.TR, TC: tile.TC, KH: g.kH, KW: g.kW, STRIDE: g.stride, VX,
      XV: VX === 1 ? 'f32' : `vec${VX}<f32>`, OV: VO === 1 ? 'f32' : `vec${VO}<f32>`, ...code,
    },
    workgroups: [Math.ceil(tiles / 64), Math.ceil(g.Cout / tile.R), 1],
  });
  packed.dispose();
  return out;
}

/** dL/dX with the subgroup transposed-conv kernel (any stride, padding and window). */
export function subgroupInputGrad(gradOut: Tensor, weight: Tensor, g: ConvGeometry, tile: InputGradTile): Tensor {
  if (tile.rowVector && !dyRowVectorFits(tile.rowVector, tile.TC, g)) {
    throw new RangeError(`conv2d: reading dY rows as vec${tile.rowVector}s needs OW and TC to be multiples of ${tile.rowVector} (OW ${g.OW}, tile ${tile.R}x${tile.TR}x${tile.TC})`);
  }
  // Packed as the weight of the conv from dY (Cout channels) to dX (Cin channels).
  const { packed, CP } = packWeights(weight, { ...g, Cin: g.Cout, Cout: g.Cin }, true);
  const out = Tensor.empty([g.N, g.Cin, g.H, g.W]);
  const blocks = g.N * Math.ceil(Math.ceil(g.H / g.stride) / tile.TR) * Math.ceil(Math.ceil(g.W / g.stride) / tile.TC);
  launch(inputGradKernels.inputGrad, {
    label: `conv2d.subgroup.inputGrad ${gradOut.describe()}, ${weight.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad} tile ${tile.R}x${tile.TR}x${tile.TC}${tile.rowVector ? ` vec${tile.rowVector}` : ''}`,
    inputs: { Wp: packed, dY: gradOut },
    outputs: { Out: out },
    params: { ...g, CP },
    defines: { R: tile.R, TR: tile.TR, TC: tile.TC, STRIDE: g.stride, ...inputGradCode(tile, g, lanesHere('inputGrad')) },
    workgroups: [Math.ceil(blocks / 64), Math.ceil(g.Cin / tile.R), 1],
  });
  packed.dispose();
  return out;
}

/** dL/dW with the subgroup kernel. */
export function subgroupWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, tile: WeightGradTile): Tensor {
  if (tile.packed) return subgroupWeightGradPacked(gradOut, x, g, tile);
  const rows = g.N * g.OH;
  const rowsPerChunk = Math.ceil(rows / tile.chunks);
  const chunks = Math.ceil(rows / rowsPerChunk);
  const shape = [g.Cout, g.Cin, g.kH, g.kW];
  const out = Tensor.empty(chunks === 1 ? shape : [chunks, ...shape]);
  launch(weightGradKernels.weightGrad, {
    label: `conv2d.subgroup.weightGrad ${gradOut.describe()}, ${x.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad} tile ${tile.R}x${tile.PX}/${chunks}`,
    inputs: { dY: gradOut, X: x },
    outputs: { Out: out },
    params: { ...g, rowsPerChunk },
    defines: { R: tile.R, PX: tile.PX, WG: tile.WG, KH: g.kH, KW: g.kW, STRIDE: g.stride, ...weightGradCode(tile, g.kH, g.kW, g.stride, lanesHere('weightGrad')) },
    workgroups: [Math.ceil(g.Cin / tile.WG), Math.ceil(g.Cout / tile.R), chunks],
  });
  return sumWeightGradSlices(out, chunks);
}

/** dL/dW with the subgroup kernels that read vec4-aligned X (or a padded copy) and dY. */
function subgroupWeightGradPacked(gradOut: Tensor, x: Tensor, g: ConvGeometry, tile: WeightGradTile): Tensor {
  const S = g.stride;
  if (tile.PX % 4 !== 0 || (tile.PX * S) % 4 !== 0) throw new RangeError(`conv2d weight gradient: packed tile needs PX and PX * stride multiples of 4 (PX ${tile.PX}, stride ${S})`);
  const rows = g.N * g.OH;
  // Rolling chunks are slices of the images, the rows kernel's of the (n, oh) rows.
  const imagesPerChunk = Math.ceil(g.N / tile.chunks);
  const rowsPerChunk = Math.ceil(rows / tile.chunks);
  const chunks = tile.packed === 'rolling' ? Math.ceil(g.N / imagesPerChunk) : Math.ceil(rows / rowsPerChunk);
  const steps = Math.ceil(g.OW / tile.PX);
  const OWp = steps * tile.PX;
  // The last step reads NV vec4s per row from column (steps - 1) PX S; the rows run to
  // (OH - 1) S + kH - 1. Both at least cover the padded map.
  const NV = Math.ceil(((tile.PX - 1) * S + g.kW) / 4);
  // Rolling where every window row starts at the same lane of a vec4 at every step (X's planes
  // and S of its rows whole vec4s): X itself, the loads masked.
  const direct = tile.packed === 'rolling' && (g.H * g.W) % 4 === 0 && (S * g.W) % 4 === 0;
  const Wp = direct ? g.W : Math.max(Math.ceil((g.W + g.pad) / 4) * 4, (steps - 1) * tile.PX * S + 4 * NV);
  const Hp = direct ? g.H : Math.max(g.H + g.pad, (g.OH - 1) * S + g.kH);
  // Window row kh starts at element (kh - pad) W - pad of a plane, modulo S W (a multiple of 4).
  const leads = direct ? Array.from({ length: g.kH }, (_, kh) => ((((kh - g.pad) * g.W - g.pad) % 4) + 4) % 4) : null;
  const xp = direct ? x : padPlanes(x, g.N * g.Cin, g.H, g.W, Hp, Wp, g.pad, g.pad);
  // Rows a whole number of steps wide are already vec4-aligned: dY serves as it is.
  const dyp = OWp === g.OW ? gradOut : padPlanes(gradOut, g.N * g.Cout, g.OH, g.OW, g.OH, OWp, 0, 0);
  const shape = [g.Cout, g.Cin, g.kH, g.kW];
  const out = Tensor.empty(chunks === 1 ? shape : [chunks, ...shape]);
  const label = `conv2d.subgroup.weightGrad ${gradOut.describe()}, ${x.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad} tile ${tile.R}x${tile.PX}/${chunks} packed ${tile.packed}`;
  const params = { ...g, rowsPerChunk, Hp, Wp, OWp };
  const window = { R: tile.R, PX: tile.PX, KH: g.kH, KW: g.kW, STRIDE: S };
  const L = lanesHere('weightGrad');
  if (tile.packed === 'rows') {
    launch(weightGradRowsKernels.weightGrad, {
      label, inputs: { dYp: dyp, Xp: xp }, outputs: { Out: out }, params,
      defines: { ...window, LANES: L, ...weightGradRowsCode(tile, g.kH, g.kW, S) },
      workgroups: [g.Cin, Math.ceil(g.Cout / tile.R), chunks],
    });
  } else {
    launch(weightGradRollingKernels.weightGrad, {
      label: `${label}${direct ? ' direct' : ''}`, inputs: { dYp: dyp, Xp: xp }, outputs: { Out: out },
      params: { ...g, imagesPerChunk, Hp, Wp, OWp, top: direct ? g.pad : 0, left: direct ? g.pad : 0 },
      defines: { ...window, WG: tile.WG, ...weightGradRollingCode(tile, g.kH, g.kW, S, L, leads) },
      workgroups: [Math.ceil(g.Cin / tile.WG), Math.ceil(g.Cout / tile.R), chunks],
    });
  }
  if (xp !== x) xp.dispose();
  if (dyp !== gradOut) dyp.dispose();
  return sumWeightGradSlices(out, chunks);
}
