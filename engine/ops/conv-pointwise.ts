// The pointwise conv kernels (shaders/conv-pointwise-*.wgsl): the weight gradient of a 1x1 conv
// without padding at any stride, and its input gradient at stride 2 or more (a scatter into
// every s-th pixel), each a GEMM per image in the matmul's 'subgroup' design, for adapters whose
// subgroups have a fixed size L of 8 (lavapipe) or 4 (the code takes its shared operands from
// lanes 0 to L-1: `subgroupConvSize`). The stride-1 forward and input gradient of a 1x1 conv
// run as matmuls (conv.ts); these two cannot without copies (the weight gradient sums over the
// images, the strided ones read or write every s-th pixel). The strided weight gradient reads a
// packed copy of X's strided pixels (`subsampleX`, one cheap pass) where `compactsX` says.
import weightGradSource from '../../shaders/conv-pointwise-weightgrad.wgsl';
import inputGradSource from '../../shaders/conv-pointwise-inputgrad.wgsl';
import subsampleSource from '../../shaders/conv-pointwise-subsample.wgsl';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams, sumWeightGradSlices } from './conv-common.ts';
import { grid1d, launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { subgroupConvSize } from './conv-subgroup.ts';

const weightGradKernels = declareKernels({
  name: 'conv2d.pointwise',
  source: weightGradSource,
  params: { ...convGeometryParams, imagesPerChunk: 'u32' },
  defines: { TM: 'u32', TN: 'u32', STRIDE: 'u32', WG_X: 'u32', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dY: 'f32', X: 'f32' }, outputs: { Out: 'f32' } } },
});

const inputGradKernels = declareKernels({
  name: 'conv2d.pointwise',
  source: inputGradSource,
  params: convGeometryParams,
  defines: { TM: 'u32', TN: 'u32', STRIDE: 'u32', WG_X: 'u32', YV: 'type', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { inputGrad: { inputs: { Wt: 'f32', dY: 'YV' }, outputs: { Out: 'f32' } } },
});

const subsampleKernels = declareKernels({
  name: 'conv2d.pointwise',
  source: subsampleSource,
  params: { rows: 'u32', OH: 'u32', H: 'u32', W: 'u32', last: 'u32' },
  defines: { ROWS: 'u32', OWC: 'u32', STRIDE: 'u32', XV: 'type', BODY: 'code' },
  entryPoints: { subsample: { inputs: { X: 'XV' }, outputs: { Out: 'vec4<f32>' } } },
});

/** TM rows (weight gradient: output channels; input gradient: input channels) x TN columns
 * (input channels; pixels) per invocation, TM a multiple of the lanes, TN of 4. `chunks`
 * (weight gradient): slices of the images, each summed into its own partial dW. `compact`
 * (weight gradient at a stride above 1): read a packed copy of X's strided pixels
 * (`subsampleX`) rather than X itself; by default where `compactsX` says. */
export interface PointwiseTile { TM: number; TN: number; chunks: number; compact?: boolean }

/** Whether the weight gradient reads X through a packed copy of its strided pixels by default:
 * at a stride above 1 with 64 output channels or more, where the copy is small beside the GEMM
 * (interleaved wall time of one call, compact against direct, loaded machine: ResNet-18 at
 * batch 32 64->128 32x32 0.70-0.86, 128->256 16x16 0.75-0.94, 256->512 8x8 0.84; the small
 * ResNet at batch 256 32->64 14x14 0.90-0.98, 16->32 28x28 1.28, also at batch 64). */
export function compactsX(g: ConvGeometry): boolean {
  return g.stride > 1 && g.Cout >= 64;
}

/** Output rows a subsample invocation packs (64 vec4s at 16 wide; ResNet-18's 64->128 32x32 at
 * batch 32, interleaved: 4 rows 1.2-1.5 ms, 8 or 16 rows 0.7-1.0). */
const SUBSAMPLE_ROWS = 16;

/** X's pixels (oh s, ow s), packed as [N, Cin, OH, OWC] with OWC = OW rounded up to 4 (the
 * columns past OW are never read). */
export function subsampleX(x: Tensor, g: ConvGeometry, rowsPerInvocation = SUBSAMPLE_ROWS): { xc: Tensor; OWC: number } {
  const OWC = Math.ceil(g.OW / 4) * 4;
  const s = g.stride;
  // Every used row of X starts on a vec4 where planes and s rows are whole vec4s; one vec4 for
  // two stride-2 pixels (the .x and .z) was no slower than two floats (0.94-1.0 ms against
  // 0.96-1.2 at 8-16 rows).
  const vec = (g.H * g.W) % 4 === 0 && (s * g.W) % 4 === 0;
  const body: string[] = [];
  const pick: string[] = [];
  if (vec) {
    body.push('    let q = b / 4u;');
    const loaded = new Set<number>();
    for (let c = 0; c < OWC; c++) {
      const j = (s * c) >> 2;
      if (!loaded.has(j)) body.push(`    let v${j} = X[min(q + ${j}u, p.last)];`);
      loaded.add(j);
      pick.push(`v${j}.${xyzw[(s * c) & 3]}`);
    }
  } else {
    for (let c = 0; c < OWC; c++) {
      body.push(`    let x${c} = X[min(b + ${s * c}u, p.last)];`);
      pick.push(`x${c}`);
    }
  }
  for (let k = 0; k < OWC / 4; k++) body.push(`    Out[o + ${k}u] = vec4<f32>(${pick.slice(4 * k, 4 * k + 4).join(', ')});`);
  const rows = g.N * g.Cin * g.OH;
  const xc = Tensor.empty([g.N, g.Cin, g.OH, OWC]);
  launch(subsampleKernels.subsample, {
    label: `conv2d.pointwise.subsample ${x.describe()} s${s}`,
    inputs: { X: x },
    outputs: { Out: xc },
    params: { rows, OH: g.OH, H: g.H, W: g.W, last: (vec ? x.size / 4 : x.size) - 1 },
    defines: { ROWS: rowsPerInvocation, OWC, STRIDE: s, XV: vec ? 'vec4<f32>' : 'f32', BODY: body.join('\n') },
    workgroups: grid1d(Math.ceil(rows / rowsPerInvocation), 64),
  });
  return { xc, OWC };
}

/** Whether the pointwise kernels compute `g`: a 1x1 window without padding. */
export function isPointwiseWindow(g: ConvGeometry): boolean {
  return g.kH === 1 && g.kW === 1 && g.pad === 0;
}

const xyzw = 'xyzw';

function lanes(op: string): number {
  const L = subgroupConvSize();
  if (L === 0) throw new Error(`conv2d.pointwise.${op}: needs subgroups of a fixed size 4 or 8 (this adapter has none)`);
  return L;
}

function checkTile(t: PointwiseTile, L: number, g: ConvGeometry): void {
  if (t.TM % L !== 0 || t.TN % 4 !== 0 || t.TN < 4 || t.chunks < 1) throw new RangeError(`conv2d.pointwise: tile ${t.TM}x${t.TN} needs TM a multiple of ${L} and TN of 4`);
  if (!isPointwiseWindow(g)) throw new RangeError(`conv2d.pointwise: needs a 1x1 window without padding (got k${g.kH}x${g.kW} p${g.pad})`);
}

/** The lanes' broadcast rows and the TM x TN / 4 vec4 multiply-adds of one step, given the
 * step's per-lane row loads `al{g}` and column vectors `vb{q}`. */
function multiplyAdds(TM: number, TN: number, L: number): string[] {
  const body: string[] = [];
  for (let r = 0; r < TM; r++) {
    body.push(`    let va${r} = subgroupBroadcast(al${Math.floor(r / L)}, ${r % L}u);`);
    for (let q = 0; q < TN / 4; q++) body.push(`    c${r}_${q} += va${r} * vb${q};`);
  }
  return body;
}

function accumulators(TM: number, TN: number): string {
  const acc: string[] = [];
  for (let r = 0; r < TM; r++) for (let q = 0; q < TN / 4; q++) acc.push(`  var c${r}_${q} = vec4<f32>(0.0);`);
  return acc.join('\n');
}

/** Invocations a workgroup along the columns: one subgroup where the columns fit in it, else two. */
function workgroupWidth(columnTiles: number, L: number): number {
  return columnTiles <= L ? L : 2 * L;
}

/** dL/dW of a 1x1 conv without padding (any stride). */
export function pointwiseWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, tile: PointwiseTile): Tensor {
  const L = lanes('weightGrad');
  checkTile(tile, L, g);
  const compact = tile.compact ?? compactsX(g);
  if (compact && g.stride === 1) throw new RangeError('conv2d.pointwise.weightGrad: a compact X needs a stride above 1');
  const { xc: xs, OWC } = compact ? subsampleX(x, g) : { xc: x, OWC: g.W };
  // The GEMM over the compact X is the stride-1 one on OH x OWC planes (it reads OW columns).
  const gx: ConvGeometry = compact ? { ...g, H: g.OH, W: OWC, stride: 1 } : g;
  const { TM, TN } = tile;
  const setup: string[] = [];
  for (let i = 0; i < TM / L; i++) setup.push(`  let a${i} = min(row0 + lane + ${i * L}u, p.Cout - 1u) * dyPlane;`);
  for (let c = 0; c < TN; c++) setup.push(`  let b${c} = min(col0 + ${c}u, p.Cin - 1u) * xPlane;`);
  const body: string[] = [];
  for (let i = 0; i < TM / L; i++) body.push(`        let al${i} = dY[a${i} + dyk];`);
  for (let q = 0; q < TN / 4; q++) {
    body.push(`        let vb${q} = vec4<f32>(${[0, 1, 2, 3].map((c) => `X[b${4 * q + c} + xk]`).join(', ')});`);
  }
  body.push(...multiplyAdds(TM, TN, L).map((line) => `    ${line}`));
  const store: string[] = [];
  for (let r = 0; r < TM; r++) {
    store.push(`  if (row0 + ${r}u < p.Cout) {`);
    store.push(`    let o${r} = slice + (row0 + ${r}u) * p.Cin + col0;`);
    for (let c = 0; c < TN; c++) store.push(`    if (col0 + ${c}u < p.Cin) { Out[o${r} + ${c}u] = c${r}_${c >> 2}.${xyzw[c & 3]}; }`);
    store.push('  }');
  }
  const imagesPerChunk = Math.ceil(g.N / tile.chunks);
  const chunks = Math.ceil(g.N / imagesPerChunk);
  const columnTiles = Math.ceil(g.Cin / TN);
  const WG_X = workgroupWidth(columnTiles, L);
  const shape = [g.Cout, g.Cin, 1, 1];
  const out = Tensor.empty(chunks === 1 ? shape : [chunks, ...shape]);
  launch(weightGradKernels.weightGrad, {
    label: `conv2d.pointwise.weightGrad ${gradOut.describe()}, ${x.describe()} s${g.stride}${compact ? ' compact' : ''} tile ${TM}x${TN}/${chunks}`,
    inputs: { dY: gradOut, X: xs },
    outputs: { Out: out },
    params: { ...gx, imagesPerChunk },
    defines: { TM, TN, STRIDE: gx.stride, WG_X, SETUP: setup.join('\n'), ACC: accumulators(TM, TN), BODY: body.join('\n'), STORE: store.join('\n') },
    workgroups: [Math.ceil(columnTiles / WG_X), Math.ceil(g.Cout / TM), chunks],
  });
  if (xs !== x) xs.dispose();
  return sumWeightGradSlices(out, chunks);
}

/** dL/dX of a 1x1 conv without padding (any stride; the ops use it for strided ones). */
export function pointwiseInputGrad(gradOut: Tensor, weight: Tensor, g: ConvGeometry, tile: PointwiseTile): Tensor {
  const L = lanes('inputGrad');
  checkTile(tile, L, g);
  const { TM, TN } = tile;
  const pixels = g.OH * g.OW;
  // dY read as vec4s of 4 pixels where every plane is whole vec4s (then every tile's are).
  const vec = pixels % 4 === 0;
  const setup: string[] = [];
  for (let i = 0; i < TM / L; i++) setup.push(`  let a${i} = min(row0 + lane + ${i * L}u, p.Cin - 1u);`);
  // The columns run over the pixels of every image (small maps fill the lanes too): column j
  // is pixel j % pixels of image j / pixels; those past the last compute a copy of it.
  const column = (c: number) => {
    setup.push(`  let j${c} = min(col0 + ${c}u, columns - 1u);`);
    setup.push(`  let n${c} = j${c} / pixels;`);
    setup.push(`  let px${c} = j${c} % pixels;`);
  };
  if (vec) {
    // Four columns from a multiple of 4 lie in one image (pixels % 4 == 0).
    setup.push('  let strideY = pixels / 4u;');
    for (let q = 0; q < TN / 4; q++) {
      column(4 * q);
      setup.push(`  let b${q} = (n${4 * q} * p.Cout * pixels + px${4 * q}) / 4u;`);
    }
  } else {
    for (let c = 0; c < TN; c++) {
      column(c);
      setup.push(`  let b${c} = n${c} * p.Cout * pixels + px${c};`);
    }
  }
  const body: string[] = [];
  body.push('    let wk = k * p.Cin;');
  for (let i = 0; i < TM / L; i++) body.push(`    let al${i} = Wt[a${i} + wk];`);
  for (let q = 0; q < TN / 4; q++) {
    body.push(vec ? `    let vb${q} = dY[b${q} + k * strideY];`
      : `    let vb${q} = vec4<f32>(${[0, 1, 2, 3].map((c) => `dY[b${4 * q + c} + k * pixels]`).join(', ')});`);
  }
  body.push(...multiplyAdds(TM, TN, L));
  const store: string[] = [];
  // Pixel (oh, ow) of dY is pixel (oh s, ow s) of dX.
  for (let c = 0; c < TN; c++) {
    const j = vec ? 4 * (c >> 2) : c;
    const px = vec ? `(px${j} + ${c & 3}u)` : `px${c}`;
    store.push(`  let off${c} = n${j} * p.Cin * plane + (${px} / p.OW) * STRIDE * p.W + (${px} % p.OW) * STRIDE;`);
  }
  for (let r = 0; r < TM; r++) {
    store.push(`  if (row0 + ${r}u < p.Cin) {`);
    store.push(`    let o${r} = (row0 + ${r}u) * plane;`);
    for (let c = 0; c < TN; c++) store.push(`    if (col0 + ${c}u < columns) { Out[o${r} + off${c}] = c${r}_${c >> 2}.${xyzw[c & 3]}; }`);
    store.push('  }');
  }
  const columnTiles = Math.ceil(g.N * pixels / TN);
  const WG_X = workgroupWidth(columnTiles, L);
  // Only every s-th pixel of every s-th row is written: the rest must be zeros.
  const out = g.stride === 1 ? Tensor.empty([g.N, g.Cin, g.H, g.W]) : Tensor.zeros([g.N, g.Cin, g.H, g.W]);
  launch(inputGradKernels.inputGrad, {
    label: `conv2d.pointwise.inputGrad ${gradOut.describe()}, ${weight.describe()} s${g.stride} tile ${TM}x${TN}`,
    inputs: { Wt: weight, dY: gradOut },
    outputs: { Out: out },
    params: g,
    defines: { TM, TN, STRIDE: g.stride, WG_X, YV: vec ? 'vec4<f32>' : 'f32', SETUP: setup.join('\n'), ACC: accumulators(TM, TN), BODY: body.join('\n'), STORE: store.join('\n') },
    workgroups: [Math.ceil(columnTiles / WG_X), Math.ceil(g.Cin / TM), 1],
  });
  return out;
}
