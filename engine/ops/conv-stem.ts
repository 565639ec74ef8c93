// Conv kernels for very few input channels at stride 1 (an image stem: the small ResNet's 1->16
// on 28x28, ResNet-18's 3->64 on 32x32): the forward (shaders/conv-stem-forward.wgsl) and the
// weight gradient (shaders/conv-stem-weightgrad.wgsl), with every per-tap, per-column and
// per-channel step generated here into named values. With one input channel a stem conv does 9
// multiply-adds per output value, so the general kernels, built to share loads among many input
// channels, spend their time on tile set-up and scattered stores; these store (forward) or read
// (weight gradient) the output-sized tensor as vec4 rows and keep everything else in registers.
// The same family's narrow forward (shaders/conv-stem-narrow.wgsl) is the other side of a stem:
// at most 4 output channels from many input channels, the stride-1 input gradient of a stem (a
// flipped forward, 16->1 or 64->3), where the general kernels pad the channel block to 4 or 8
// and read each input row three times per strip; its lanes share their input columns and the
// weights through subgroup operations. Its rolling form (shaders/conv-stem-narrow-rolling.wgsl)
// walks the whole map a block of input channels at a time and reads every input row once.
import forwardSource from '../../shaders/conv-stem-forward.wgsl';
import narrowSource from '../../shaders/conv-stem-narrow.wgsl';
import narrowRollingSource from '../../shaders/conv-stem-narrow-rolling.wgsl';
import weightGradSource from '../../shaders/conv-stem-weightgrad.wgsl';
import { fixedSubgroupSize } from '../device.ts';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams, sumWeightGradSlices } from './conv-common.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';

// The geometry (kH, kW and stride are in the generated code) and the rows a chunk takes.
const params = { ...convGeometryParams, perChunk: 'u32' } as const;

const forwardKernels = declareKernels({
  name: 'conv2d.stem',
  source: forwardSource,
  params,
  defines: { R: 'u32', XV: 'type', OV: 'type', WEIGHTS: 'code', PROLOGUE: 'code', BODY: 'code' },
  entryPoints: { forward: { inputs: { Wt: 'f32', X: 'XV' }, outputs: { Out: 'OV' } } },
});

const narrowKernels = declareKernels({
  name: 'conv2d.stem.narrow',
  source: narrowSource,
  params: { ...params, lanesPerRow: 'u32' },
  defines: { XV: 'type', OV: 'type', SETUP: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { narrow: { inputs: { Wt: 'f32', X: 'XV' }, outputs: { Out: 'OV' } } },
});

const narrowRollingKernels = declareKernels({
  name: 'conv2d.stem.narrowRolling',
  source: narrowRollingSource,
  params: { ...params, lanesPerRow: 'u32' },
  defines: { CB: 'u32', XV: 'type', OV: 'type', SETUP: 'code', BLOCK: 'code', BODY: 'code', FLUSH: 'code' },
  entryPoints: { narrowRolling: { inputs: { Wt: 'f32', X: 'XV' }, outputs: { Out: 'OV' } } },
});

const weightGradKernels = declareKernels({
  name: 'conv2d.stem.weightGrad',
  source: weightGradSource,
  params,
  defines: { R: 'u32', KH: 'u32', KW: 'u32', SG: 'u32', YV: 'type', XV: 'type', ENABLE: 'code', ACC: 'code', PROLOGUE: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dY: 'YV', X: 'XV' }, outputs: { Out: 'f32' } } },
});

/** The most input channels these kernels take (the generated body grows with them). */
export const STEM_MAX_CIN = 4;

/** Whether the stem kernels fit `g`: stride 1, at most STEM_MAX_CIN input channels, a window
 * of at most 3x3 (so that the weights or accumulators an invocation holds stay at most 8 x 2 x 9
 * or 4 x 4 x 9). */
export function stemFits(g: ConvGeometry): boolean {
  return g.stride === 1 && g.Cin <= STEM_MAX_CIN && g.kH <= 3 && g.kW <= 3;
}

/** Whether the narrow forward (shaders/conv-stem-narrow.wgsl) fits `g`: stride 1, at most 4
 * output channels (an invocation accumulates them all), a window of at most 3x3, more input
 * channels than the stem kernels take (with fewer, they fit and are offered instead). Above
 * all the stride-1 input gradient of a stem, a flipped forward from 16 or 64 channels to 1 or 3. */
export function stemNarrowFits(g: ConvGeometry): boolean {
  return g.stride === 1 && g.Cout <= 4 && g.Cin > STEM_MAX_CIN && g.kH <= 3 && g.kW <= 3 && g.pad <= 3 && fixedSubgroupSize() >= 4;
}

/** Whether the rules should pick the narrow forward where it is offered: with subgroups of 8
 * (lavapipe). With SwiftShader's 4 it was slower than the unrolled kernel at the small ResNet's
 * stem input gradient (16->1 28x28, N = 32, interleaved in one page: 4.6-4.8 ms a call against
 * 3.7), where a row takes two subgroups and each row read is a gather per value. */
export function stemNarrowPreferred(): boolean {
  return fixedSubgroupSize() === 8;
}

/** Output channels an invocation, the rule's pick first: 8 and 4 for the forward, 4 and 8 for
 * the weight gradient (16 were slower at the small ResNet's stem, N = 256, a loaded machine:
 * forward 4.3 ms against 3.3 for 8 wall-clock, weight gradient 5.4 against 3.8 GPU time; the
 * weight gradient with 4 about as fast as with 8 on lavapipe, 2.0 against 1.5 GFLOP/s in
 * Chromium at N = 32, where the forward ran 2.3 with 8 against 2.0 with 4); only 4 with more
 * than 2 input channels; every channel where there are at most 4. */
function channelBlocks(g: ConvGeometry, op: 'forward' | 'weightGrad'): number[] {
  if (g.Cout <= 4) return [g.Cout];
  if (g.Cin > 2) return [4];
  return op === 'forward' ? [8, 4] : [4, 8];
}

/** R output channels an invocation (every channel when there are fewer); the work split into
 * chunks of `perChunk` (forward: output rows of one map; weight gradient: images). `narrow`:
 * the narrow forward, R every output channel and perChunk the output rows an invocation
 * accumulates (unrolled into its code); with `rolling`, its walk down the whole map
 * (shaders/conv-stem-narrow-rolling.wgsl) and perChunk the input channels a block.
 * `subgroupSum` (weight gradient, subgroups of a fixed size): a partial-sum slab a subgroup,
 * not an invocation. */
export interface StemTile { R: number; perChunk: number; narrow?: boolean; rolling?: boolean; subgroupSum?: boolean }

/** Forward tiles worth measuring (none where neither kernel fits): the stem kernel's whole
 * maps an invocation, or the narrow kernel's chunks of rows. */
export function stemForwardTiles(g: ConvGeometry): StemTile[] {
  if (stemFits(g)) return channelBlocks(g, 'forward').map((R) => ({ R, perChunk: g.OH }));
  if (!stemNarrowFits(g)) return [];
  // Only where at most a quarter of a row's lanes are idle (a 28-wide map: 7 strips on 8 lanes).
  const { lanesPerRow } = narrowLayout(g);
  if (4 * Math.ceil(g.OW / 4) < 3 * lanesPerRow) return [];
  // The rolling walk in blocks of 4 input channels, the rule's, and of 8 (see below); then
  // chunks of 4 rows (GPU ms of one call on lavapipe, interleaved: at the small ResNet's stem
  // input gradient, 16->1 28x28 at N = 256, medians of 21 pairs 4.46 with 4 rows, 5.51 with 2,
  // 5.24 with 3, 4.78 with 7; at ResNet-18's, 64->3 32x32 at N = 32, 4.59 with 4, 4.72 with 3,
  // 8.52 with 8, whose 24 accumulators spill), and of at most 8 split evenly.
  const rolling: StemTile[] = stemNarrowRollingFits(g) ? [4, 8].map((CB) => ({ R: g.Cout, perChunk: CB, narrow: true, rolling: true })) : [];
  const even = Math.ceil(g.OH / Math.ceil(g.OH / 8));
  return [...rolling, ...[...new Set([Math.min(4, g.OH), even])].map((perChunk) => ({ R: g.Cout, perChunk, narrow: true }))];
}

/** Weight-gradient tiles worth measuring: the images split into chunks so that there are about 512
 * (chunk, strip) pairs, each writing its own partial sums (at the small ResNet's stem, N = 256:
 * 4 images a chunk, GPU time about equal to 2 a chunk, whose partial sums took 0.8 ms to add
 * against 0.3). Where subgroups are 8 wide (lavapipe) each subgroup first adds its lanes' partial
 * sums (`subgroupSum`), leaving an eighth of the slabs to add: at the small ResNet's stem that
 * took 0.94-0.96 of the wall time of a call (paired medians of 31-41 interleaved rounds, a loaded
 * machine; GPU time 0.98). */
export function stemWeightGradTiles(g: ConvGeometry): StemTile[] {
  if (!stemFits(g)) return [];
  const strips = Math.ceil(g.OW / 4);
  const perChunk = Math.max(1, Math.round((g.N * strips) / 512));
  const subgroupSum = fixedSubgroupSize() === 8;
  return channelBlocks(g, 'weightGrad').map((R) => (subgroupSum ? { R, perChunk, subgroupSum } : { R, perChunk }));
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
  // A vec4 the window covers only in part is read component by component: a per-lane load
  // costs per component on the software adapters (docs/environment.md#speed-on-lavapipe), so
  // the 3x3 window's 6 columns cost 6 loads, not the 12 of three whole vec4s. At the small
  // ResNet's stem weight gradient (1->16 28x28, N = 256, GPU ms of one call on lavapipe,
  // interleaved, a loaded machine) that took the median from 4.39 to 4.00 and the 10th
  // percentile from 2.95 to 2.82 (301 pairs); the forwards were not slower.
  const load = (sfx: string, rowIn: string, rowOff: string, ind: string) => {
    const body: string[] = [];
    for (let v = v0; v <= v1; v++) {
      const k = v - v0;
      const comps = [0, 1, 2, 3].filter((j) => 4 * v + j + pad >= 0 && 4 * v + j + pad < NS);
      if (comps.length === 4) {
        body.push(`${ind}let xv${sfx}_${k} = select(vec4<f32>(0.0), X[(${rowOff}) / 4u + vOff${k}], ${rowIn} && vIn${k});`);
        for (const j of comps) body.push(`${ind}let x${sfx}_${4 * v + j + pad} = xv${sfx}_${k}.${XYZW[j]};`);
      } else {
        for (const j of comps) body.push(`${ind}let x${sfx}_${4 * v + j + pad} = select(0.0, X[(${rowOff}) / 4u + vOff${k}].${XYZW[j]}, ${rowIn} && vIn${k});`);
      }
    }
    return body;
  };
  return { colSetup, load };
}

/** Code for the window rows of output rows walked down a strip, each input row read once: the
 * first kH - 1 rows before the walk (`prologue`, at output row `first`) into variables, then per
 * output row (`body`) the row entering the window, the vec4 of the strip's 4 pixels' inputs
 * under each tap (`s${ci}_${kh}_${kw}`), and (`shift`, after the row's work) the window moved
 * down one row. */
function rollingRows(g: ConvGeometry, load: ReturnType<typeof columns>['load'], first: string, ind: string, bodyInd: string): { prologue: string[]; body: string[]; shift: string[] } {
  const NS = 3 + g.kW;
  const last = g.kH - 1;
  const rowCode = (name: string, ih: string, i: string) => [
    `${i}let ih${name} = ${ih};`,
    `${i}let rIn${name} = ih${name} >= 0 && ih${name} < i32(p.H);`,
    `${i}let rOff${name} = select(0u, u32(ih${name}), rIn${name}) * p.W;`,
  ];
  const prologue: string[] = [];
  for (let k = 0; k < last; k++) {
    prologue.push(...rowCode(`P${k}`, `i32(${first}) + ${k - g.pad}`, ind));
    for (let ci = 0; ci < g.Cin; ci++) {
      prologue.push(...load(`P${ci}_${k}`, `rInP${k}`, `image + ${ci}u * plane + rOffP${k}`, ind));
      for (let c = 0; c < NS; c++) prologue.push(`${ind}var r${ci}_${k}_${c} = xP${ci}_${k}_${c};`);
    }
  }
  const body: string[] = rowCode('N', `i32(oh) + ${last - g.pad}`, bodyInd);
  const shift: string[] = [];
  for (let ci = 0; ci < g.Cin; ci++) {
    body.push(...load(`N${ci}`, 'rInN', `image + ${ci}u * plane + rOffN`, bodyInd));
    const col = (kh: number, c: number) => (kh === last ? `xN${ci}_${c}` : `r${ci}_${kh}_${c}`);
    for (let kh = 0; kh < g.kH; kh++) {
      for (let kw = 0; kw < g.kW; kw++) {
        const xs = [0, 1, 2, 3].map((j) => col(kh, kw + j));
        body.push(`${bodyInd}let s${ci}_${kh}_${kw} = vec4<f32>(${xs.join(', ')});`);
      }
    }
    for (let k = 0; k < last; k++) for (let c = 0; c < NS; c++) shift.push(`${bodyInd}r${ci}_${k}_${c} = ${col(k + 1, c)};`);
  }
  // A code define may not be empty.
  if (prologue.length === 0) prologue.push(`${ind}// A window of one row: nothing to read before the walk.`);
  return { prologue, body, shift };
}

/** Whether rows can be read and written as vec4s: the input's and the output's widths are
 * multiples of 4 (so every row and plane starts on a vec4). */
function rowsAreVec4(g: ConvGeometry): boolean {
  return g.W % 4 === 0 && g.OW % 4 === 0;
}

/** The generated parts of the forward shader. */
export function stemForwardCode(g: ConvGeometry, t: StemTile, flipped: boolean): { WEIGHTS: string; PROLOGUE: string; BODY: string } {
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
  const rows = rollingRows(g, load, 'oh0', '  ', ind);
  const body = rows.body;
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
  body.push(...rows.shift);
  return { WEIGHTS: weights.join('\n'), PROLOGUE: rows.prologue.join('\n'), BODY: body.join('\n') };
}

/** How the narrow forward lays a row out on lanes: L lanes a subgroup, lanesPerRow of them a
 * row (a multiple of L covering the output's strips and the input row's), and whether a row
 * takes more than one subgroup (then lanes 0 and L - 1 read their outer neighbours' columns). */
function narrowLayout(g: ConvGeometry): { L: number; lanesPerRow: number; extra: boolean } {
  // The lanes that share loads: the adapter's fixed subgroup size (8 on lavapipe, 4 on
  // SwiftShader; 0 where it varies, and the kernel is not offered), consecutive invocations.
  const L = fixedSubgroupSize();
  const strips = Math.max(Math.ceil(g.OW / 4), Math.ceil(g.W / 4));
  const lanesPerRow = Math.ceil(strips / L) * L;
  return { L, lanesPerRow, extra: lanesPerRow > L };
}

/** The generated parts of the narrow forward's shader. */
/**
 * The narrow kernels' window row `id`: the lane's own 4 input columns (`xo{id}`, read by `own`),
 * the row's edge vec4 where lanes do not cover the row (`xe{id}`, by `extraRead` when given), the
 * neighbours' columns the window covers by shuffles (`xl`, `xr`), and the kW shifted vec4s
 * `s{id}_{kw}` that the multiply-adds take (window column c is input column ow0 + c - pad).
 */
function narrowWindowRow(g: ConvGeometry, L: number, id: number, own: string, extraRead: string | null, ind: string): string[] {
  const lines = [`${ind}let xo${id} = ${own};`];
  if (extraRead) lines.push(`${ind}let xe${id} = ${extraRead};`);
  // Only the neighbours' columns the window covers, one value a shuffle (on llvmpipe a shuffle
  // whose source lane is not a constant moves each value lane by lane).
  const outer = (j: number) => (extraRead ? `xe${id}.${XYZW[j]}` : '0.0');
  for (let j = 4 - g.pad; j < 4; j++) lines.push(`${ind}let xl${id}_${j} = select(subgroupShuffleUp(xo${id}.${XYZW[j]}, 1u), ${outer(j)}, lane == 0u);`);
  for (let j = 0; j < g.kW - 1 - g.pad; j++) lines.push(`${ind}let xr${id}_${j} = select(subgroupShuffleDown(xo${id}.${XYZW[j]}, 1u), ${outer(j)}, lane == ${L - 1}u);`);
  const col = (c: number) => {
    const rel = c - g.pad;
    return rel < 0 ? `xl${id}_${4 + rel}` : rel < 4 ? `xo${id}.${XYZW[rel]}` : `xr${id}_${rel - 4}`;
  };
  for (let kw = 0; kw < g.kW; kw++) lines.push(`${ind}let s${id}_${kw} = vec4<f32>(${[0, 1, 2, 3].map((j) => col(kw + j)).join(', ')});`);
  return lines;
}

export function stemNarrowCode(g: ConvGeometry, t: StemTile, flipped: boolean): { SETUP: string; BODY: string; STORE: string } {
  const vec = rowsAreVec4(g);
  const { L, extra } = narrowLayout(g);
  const TR = t.perChunk;
  const rows = TR + g.kH - 1;
  const setup: string[] = [];
  for (let k = 0; k < rows; k++) {
    setup.push(`  let ih${k} = i32(oh0) + ${k - g.pad};`);
    setup.push(`  let rIn${k} = ih${k} >= 0 && ih${k} < i32(p.H);`);
    setup.push(`  let rOff${k} = select(0u, u32(ih${k}), rIn${k}) * p.W;`);
  }
  // The lane's own columns and (EXTRA) those of its outer neighbour, clamped into the row.
  if (extra) setup.push(`  let eS = select(i32(s) + 1, i32(s) - 1, lane == 0u);`);
  if (vec) {
    setup.push('  let ownIn = ow0 < p.W;', '  let ownOff = select(0u, s, ownIn);');
    if (extra) setup.push('  let extraIn = eS >= 0 && u32(eS) * 4u < p.W;', '  let extraOff = select(0u, u32(eS), extraIn);');
  } else {
    for (let j = 0; j < 4; j++) {
      setup.push(`  let ownIn${j} = ow0 + ${j}u < p.W;`, `  let ownOff${j} = select(0u, ow0 + ${j}u, ownIn${j});`);
      if (extra) setup.push(`  let extraIn${j} = eS >= 0 && u32(eS) * 4u + ${j}u < p.W;`, `  let extraOff${j} = select(0u, u32(eS) * 4u + ${j}u, extraIn${j});`);
    }
  }
  for (let r = 0; r < g.Cout; r++) for (let i = 0; i < TR; i++) setup.push(`  var a${r}_${i} = vec4<f32>(0.0);`);
  // Lane l loads element c L + l of each channel's Cout x taps weights (the flipped weight's are
  // contiguous, in rotated order; the other's Cin x taps apart per output channel).
  const taps = g.kH * g.kW;
  const loads = Math.ceil((g.Cout * taps) / L);
  for (let c = 0; c < loads; c++) {
    setup.push(`  let wk${c} = min(${c * L}u + lane, ${g.Cout * taps - 1}u);`);
    setup.push(flipped ? `  let wo${c} = wk${c};` : `  let wo${c} = (wk${c} / ${taps}u) * p.Cin * ${taps}u + wk${c} % ${taps}u;`);
  }
  const ind = '    ';
  const body: string[] = [];
  for (let c = 0; c < loads; c++) body.push(`${ind}let wl${c} = Wt[ci * ${flipped ? `p.Cout * ${taps}u` : `${taps}u`} + wo${c}];`);
  for (let r = 0; r < g.Cout; r++) {
    for (let kh = 0; kh < g.kH; kh++) for (let kw = 0; kw < g.kW; kw++) {
      const k = r * taps + (flipped ? (g.kH - 1 - kh) * g.kW + (g.kW - 1 - kw) : kh * g.kW + kw);
      body.push(`${ind}let w${r}_${kh}_${kw} = subgroupBroadcast(wl${Math.floor(k / L)}, ${k % L}u);`);
    }
  }
  const read = (k: number, which: 'own' | 'extra') => vec
    ? `select(vec4<f32>(0.0), X[(chan + rOff${k}) / 4u + ${which}Off], rIn${k} && ${which}In)`
    : `vec4<f32>(${[0, 1, 2, 3].map((j) => `select(0.0, X[chan + rOff${k} + ${which}Off${j}], rIn${k} && ${which}In${j})`).join(', ')})`;
  // Row k of the chunk's window is row k - kh of the window of output row k - kh.
  for (let k = 0; k < rows; k++) {
    body.push(...narrowWindowRow(g, L, k, read(k, 'own'), extra ? read(k, 'extra') : null, ind));
    for (let kh = 0; kh < g.kH; kh++) {
      const i = k - kh;
      if (i < 0 || i >= TR) continue;
      for (let r = 0; r < g.Cout; r++) {
        const terms = Array.from({ length: g.kW }, (_, kw) => `s${k}_${kw} * w${r}_${kh}_${kw}`);
        body.push(`${ind}a${r}_${i} += ${terms.join(' + ')};`);
      }
    }
  }
  const store: string[] = [];
  if (!vec) for (let j = 0; j < 4; j++) store.push(`  let ok${j} = ow0 + ${j}u < p.OW;`);
  // Rows past the map exist only in the last chunk where TR does not divide OH.
  const partial = g.OH % TR !== 0;
  for (let i = 0; i < TR; i++) {
    const lines: string[] = [];
    for (let r = 0; r < g.Cout; r++) {
      lines.push(`let o${r}_${i} = outImage + ${r}u * oplane + (oh0 + ${i}u) * p.OW + ow0;`);
      if (vec) lines.push(`Out[o${r}_${i} / 4u] = a${r}_${i};`);
      else for (let j = 0; j < 4; j++) lines.push(`if (ok${j}) { Out[o${r}_${i} + ${j}u] = a${r}_${i}.${XYZW[j]}; }`);
    }
    const live = ['live', ...(vec ? ['ow0 < p.OW'] : []), ...(partial ? [`oh0 + ${i}u < p.OH`] : [])];
    store.push(`  if (${live.join(' && ')}) {`, ...lines.map((l) => `    ${l}`), '  }');
  }
  return { SETUP: setup.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

/** Whether the rolling narrow forward fits `g` (besides the narrow kernel's own conditions): the
 * padding within the window (its walk runs over the input rows only). */
export function stemNarrowRollingFits(g: ConvGeometry): boolean {
  return stemNarrowFits(g) && g.pad <= g.kH - 1;
}

/** The generated parts of the rolling narrow forward's shader: `CB` input channels a block. */
export function stemNarrowRollingCode(g: ConvGeometry, CB: number, flipped: boolean): { SETUP: string; BLOCK: string; BODY: string; FLUSH: string } {
  const vec = rowsAreVec4(g);
  const { L, extra } = narrowLayout(g);
  const taps = g.kH * g.kW;
  const setup: string[] = [];
  if (extra) setup.push(`  let eS = select(i32(s) + 1, i32(s) - 1, lane == 0u);`);
  if (vec) {
    setup.push('  let ownIn = ow0 < p.W;', '  let ownOff = select(0u, s, ownIn);');
    if (extra) setup.push('  let extraIn = eS >= 0 && u32(eS) * 4u < p.W;', '  let extraOff = select(0u, u32(eS), extraIn);');
  } else {
    for (let j = 0; j < 4; j++) {
      setup.push(`  let ownIn${j} = ow0 + ${j}u < p.W;`, `  let ownOff${j} = select(0u, ow0 + ${j}u, ownIn${j});`);
      if (extra) setup.push(`  let extraIn${j} = eS >= 0 && u32(eS) * 4u + ${j}u < p.W;`, `  let extraOff${j} = select(0u, u32(eS) * 4u + ${j}u, extraIn${j});`);
    }
  }
  if (!vec) for (let j = 0; j < 4; j++) setup.push(`  let ok${j} = ow0 + ${j}u < p.OW;`);
  // The block's weights: element e = (c Cout + r) taps + t (input channel cb + c, output channel
  // r, tap t), lane l loading e = k L + l, where the flipped weight holds (ci Cout + r) taps + t
  // and the other (r Cin + ci) taps + t; zero past the last channel.
  const ind = '    ';
  const block: string[] = [];
  const total = CB * g.Cout * taps;
  for (let k = 0; k < Math.ceil(total / L); k++) {
    block.push(`${ind}let we${k} = min(${k * L}u + lane, ${total - 1}u);`);
    block.push(`${ind}let wc${k} = cb + we${k} / ${g.Cout * taps}u;`);
    block.push(`${ind}let wr${k} = we${k} % ${g.Cout * taps}u;`);
    const addr = flipped
      ? `min(wc${k}, p.Cin - 1u) * ${g.Cout * taps}u + wr${k}`
      : `((wr${k} / ${taps}u) * p.Cin + min(wc${k}, p.Cin - 1u)) * ${taps}u + wr${k} % ${taps}u`;
    block.push(`${ind}let wl${k} = select(0.0, Wt[${addr}], wc${k} < p.Cin);`);
  }
  for (let c = 0; c < CB; c++) for (let r = 0; r < g.Cout; r++) for (let kh = 0; kh < g.kH; kh++) for (let kw = 0; kw < g.kW; kw++) {
    const e = (c * g.Cout + r) * taps + (flipped ? (g.kH - 1 - kh) * g.kW + (g.kW - 1 - kw) : kh * g.kW + kw);
    block.push(`${ind}let w${c}_${r}_${kh}_${kw} = subgroupBroadcast(wl${Math.floor(e / L)}, ${e % L}u);`);
  }
  for (let c = 0; c < CB; c++) block.push(`${ind}let chan${c} = image + min(cb + ${c}u, p.Cin - 1u) * plane;`);
  // a{r}_{k}: output channel r's row ih + pad - (kH - 1) + k, after input row ih.
  for (let r = 0; r < g.Cout; r++) for (let k = 0; k < g.kH; k++) block.push(`${ind}var a${r}_${k} = vec4<f32>(0.0);`);
  const bi = '      ';
  const read = (c: number, which: 'own' | 'extra') => vec
    ? `select(vec4<f32>(0.0), X[(chan${c} + rOff) / 4u + ${which}Off], ${which}In)`
    : `vec4<f32>(${[0, 1, 2, 3].map((j) => `select(0.0, X[chan${c} + rOff + ${which}Off${j}], ${which}In${j})`).join(', ')})`;
  const body: string[] = [];
  for (let c = 0; c < CB; c++) {
    body.push(...narrowWindowRow(g, L, c, read(c, 'own'), extra ? read(c, 'extra') : null, bi));
    // Input row ih is row kh of the window of output row ih + pad - kh: slot kH - 1 - kh.
    for (let r = 0; r < g.Cout; r++) for (let kh = 0; kh < g.kH; kh++) {
      const terms = Array.from({ length: g.kW }, (_, kw) => `s${c}_${kw} * w${c}_${r}_${kh}_${kw}`);
      body.push(`${bi}a${r}_${g.kH - 1 - kh} += ${terms.join(' + ')};`);
    }
  }
  // Stores slot k as output row `row`: the first block writes, the others add to what is there.
  const storeRow = (row: string, k: number, i: string): string[] => {
    const lines: string[] = [];
    for (let r = 0; r < g.Cout; r++) {
      lines.push(`${i}let o${r}_${k} = outImage + ${r}u * oplane + u32(${row}) * p.OW + ow0;`);
      if (vec) {
        lines.push(`${i}if (cb == 0u) { Out[o${r}_${k} / 4u] = a${r}_${k}; } else { Out[o${r}_${k} / 4u] += a${r}_${k}; }`);
      } else {
        for (let j = 0; j < 4; j++) lines.push(`${i}if (ok${j}) { if (cb == 0u) { Out[o${r}_${k} + ${j}u] = a${r}_${k}.${XYZW[j]}; } else { Out[o${r}_${k} + ${j}u] += a${r}_${k}.${XYZW[j]}; } }`);
      }
    }
    return lines;
  };
  const liveStrip = ['live', ...(vec ? ['ow0 < p.OW'] : [])].join(' && ');
  // The oldest slot's row is complete: store it (rows above the map are padding), move up one.
  body.push(`${bi}let oh = i32(ih) + ${g.pad - (g.kH - 1)};`);
  body.push(`${bi}if (${liveStrip} && oh >= 0) {`, ...storeRow('oh', 0, `${bi}  `), `${bi}}`);
  for (let r = 0; r < g.Cout; r++) {
    for (let k = 0; k + 1 < g.kH; k++) body.push(`${bi}a${r}_${k} = a${r}_${k + 1};`);
    body.push(`${bi}a${r}_${g.kH - 1} = vec4<f32>(0.0);`);
  }
  // After the last input row, slot k holds output row H + pad - (kH - 1) + k, complete (the
  // rows below are padding) where it is in the map.
  const flush: string[] = [];
  for (let k = 0; k + 1 < g.kH; k++) {
    flush.push(`${ind}let fh${k} = i32(p.H) + ${g.pad - (g.kH - 1) + k};`);
    flush.push(`${ind}if (${liveStrip} && fh${k} >= 0 && fh${k} < i32(p.OH)) {`, ...storeRow(`fh${k}`, k, `${ind}  `), `${ind}}`);
  }
  if (flush.length === 0) flush.push(`${ind}// A window of one row: every output row was stored in the walk.`);
  return { SETUP: setup.join('\n'), BLOCK: block.join('\n'), BODY: body.join('\n'), FLUSH: flush.join('\n') };
}

/** The stem forward (`flipped`: `weight` is [Cin, Cout, kH, kW], read transposed and rotated). */
export function stemForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped: boolean, t: StemTile): Tensor {
  const out = Tensor.empty([g.N, g.Cout, g.OH, g.OW]);
  const vec = rowsAreVec4(g);
  const strips = Math.ceil(g.OW / 4);
  if (t.narrow && t.rolling) {
    const { lanesPerRow } = narrowLayout(g);
    launch(narrowRollingKernels.narrowRolling, {
      label: `conv2d.stem.narrowRolling ${x.describe()}, ${weight.describe()} k${g.kH}x${g.kW} p${g.pad}${flipped ? ' flipped' : ''} block ${t.perChunk}`,
      inputs: { Wt: weight, X: x },
      outputs: { Out: out },
      params: { ...g, perChunk: t.perChunk, lanesPerRow },
      defines: { CB: t.perChunk, XV: vec ? 'vec4<f32>' : 'f32', OV: vec ? 'vec4<f32>' : 'f32', ...stemNarrowRollingCode(g, t.perChunk, flipped) },
      workgroups: [Math.ceil((g.N * lanesPerRow) / 64), 1, 1],
    });
    return out;
  }
  if (t.narrow) {
    const { lanesPerRow } = narrowLayout(g);
    launch(narrowKernels.narrow, {
      label: `conv2d.stem.narrow ${x.describe()}, ${weight.describe()} k${g.kH}x${g.kW} p${g.pad}${flipped ? ' flipped' : ''} rows ${t.perChunk}`,
      inputs: { Wt: weight, X: x },
      outputs: { Out: out },
      params: { ...g, perChunk: t.perChunk, lanesPerRow },
      defines: { XV: vec ? 'vec4<f32>' : 'f32', OV: vec ? 'vec4<f32>' : 'f32', ...stemNarrowCode(g, t, flipped) },
      workgroups: [Math.ceil((g.N * lanesPerRow) / 64), 1, Math.ceil(g.OH / t.perChunk)],
    });
    return out;
  }
  launch(forwardKernels.forward, {
    label: `conv2d.stem ${x.describe()}, ${weight.describe()} k${g.kH}x${g.kW} p${g.pad}${flipped ? ' flipped' : ''} tile ${t.R}/${t.perChunk}`,
    inputs: { Wt: weight, X: x },
    outputs: { Out: out },
    params: { ...g, perChunk: t.perChunk },
    defines: { R: t.R, XV: vec ? 'vec4<f32>' : 'f32', OV: vec ? 'vec4<f32>' : 'f32', ...stemForwardCode(g, t, flipped) },
    workgroups: [Math.ceil((g.N * strips) / 64), Math.ceil(g.Cout / t.R), Math.ceil(g.OH / t.perChunk)],
  });
  return out;
}

/** The generated parts of the weight-gradient shader. */
export function stemWeightGradCode(g: ConvGeometry, t: StemTile): { ENABLE: string; ACC: string; PROLOGUE: string; BODY: string; STORE: string } {
  const vec = rowsAreVec4(g);
  const { colSetup, load } = columns(g.kW, g.pad, vec);
  const R = t.R;
  const partial = g.Cout % R !== 0;
  const taps = g.kH * g.kW;
  const acc: string[] = colSetup.map((l) => `  ${l}`);
  if (!vec) for (let j = 0; j < 4; j++) acc.push(`  let ok${j} = ow0 + ${j}u < p.OW;`);
  for (let r = 0; r < R; r++) {
    acc.push(`  let ch${r} = ${partial ? `min(co0 + ${r}u, p.Cout - 1u)` : `(co0 + ${r}u)`} * oplane + ow0;`);
    for (let ci = 0; ci < g.Cin; ci++) for (let tap = 0; tap < taps; tap++) acc.push(`  var a${r}_${ci}_${tap} = 0.0;`);
  }
  const ind = '      ';
  const rows = rollingRows(g, load, '0u', '    ', ind);
  const body: string[] = [];
  for (let r = 0; r < R; r++) {
    if (vec) body.push(`${ind}let d${r} = dY[(dyRow + ch${r}) / 4u];`);
    else {
      // Pixels past the row read as zero (from the row's first pixel).
      const ds = [0, 1, 2, 3].map((j) => `select(0.0, dY[dyRow + ch${r} + select(0u, ${j}u, ok${j})], ok${j})`);
      body.push(`${ind}let d${r} = vec4<f32>(${ds.join(', ')});`);
    }
  }
  body.push(...rows.body);
  for (let r = 0; r < R; r++) {
    for (let ci = 0; ci < g.Cin; ci++) for (let kh = 0; kh < g.kH; kh++) for (let kw = 0; kw < g.kW; kw++) {
      body.push(`${ind}a${r}_${ci}_${kh * g.kW + kw} += dot(d${r}, s${ci}_${kh}_${kw});`);
    }
  }
  body.push(...rows.shift);
  const store: string[] = [];
  const SG = t.subgroupSum ? fixedSubgroupSize() : 1;
  for (let r = 0; r < R; r++) {
    const lines = [`let o${r} = outBase + (co0 + ${r}u) * taps;`];
    for (let ci = 0; ci < g.Cin; ci++) for (let tap = 0; tap < taps; tap++) {
      const a = `a${r}_${ci}_${tap}`;
      if (SG > 1) store.push(`  let t${r}_${ci}_${tap} = subgroupAdd(${a});`);
      lines.push(`Out[o${r} + ${ci * taps + tap}u] = ${SG > 1 ? `t${r}_${ci}_${tap}` : a};`);
    }
    const conds = [SG > 1 ? `li % ${SG}u == 0u` : 'live', ...(partial ? [`co0 + ${r}u < p.Cout`] : [])];
    store.push(`  if (${conds.join(' && ')}) {`, ...lines.map((l) => `    ${l}`), '  }');
  }
  return { ENABLE: SG > 1 ? 'enable subgroups;' : '// No subgroup operations.', ACC: acc.join('\n'), PROLOGUE: rows.prologue.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

/** dL/dW with the stem kernel: partial sums per (chunk of images, strip), then their sum. */
export function stemWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, t: StemTile): Tensor {
  const vec = rowsAreVec4(g);
  const invocations = Math.ceil(g.N / t.perChunk) * Math.ceil(g.OW / 4);
  const SG = t.subgroupSum ? fixedSubgroupSize() : 1;
  const slabs = Math.ceil(invocations / SG);
  const shape = [g.Cout, g.Cin, g.kH, g.kW];
  const out = Tensor.empty(slabs === 1 ? shape : [slabs, ...shape]);
  launch(weightGradKernels.weightGrad, {
    label: `conv2d.stem.weightGrad ${gradOut.describe()}, ${x.describe()} k${g.kH}x${g.kW} p${g.pad} tile ${t.R}/${t.perChunk}${SG > 1 ? ` subgroup sums of ${SG}` : ''}`,
    inputs: { dY: gradOut, X: x },
    outputs: { Out: out },
    params: { ...g, perChunk: t.perChunk },
    defines: { R: t.R, KH: g.kH, KW: g.kW, SG, YV: vec ? 'vec4<f32>' : 'f32', XV: vec ? 'vec4<f32>' : 'f32', ...stemWeightGradCode(g, t) },
    workgroups: [Math.ceil(invocations / 64), Math.ceil(g.Cout / t.R), 1],
  });
  return sumWeightGradSlices(out, slabs);
}
