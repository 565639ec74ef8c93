// conv2d over NCHW tensors with PyTorch's weight layout [Cout, Cin, kH, kW] (so checkpoints
// interoperate). 1x1 stride-1 unpadded convs are plain batched matmuls (forward and input
// gradient); the weight gradient of an unpadded 1x1 conv at any stride and its strided input
// gradient run the pointwise GEMM kernels (conv-pointwise.ts, the matmul's subgroup design
// reading and writing every s-th pixel) where the subgroup kernels are offered. The others run
// one of four kernel designs, each of forward (which, through a flipped weight, also serves the
// stride-1 input gradient) and weight gradient:
//   subgroup   register tiles, weights shared through subgroup broadcasts (conv-subgroup.ts):
//              offered where subgroups are exactly 8 wide, i.e. lavapipe, where it is fastest
//              (its kernels also run with 4 lanes, but on SwiftShader they did not pay:
//              `subgroupConvOffered`);
//              its forward tiles come twice where the map allows, the second reading the
//              input rows as vec2s or vec4s
//   unrolled   register tiles with every step a named variable (conv-unrolled.ts,
//              conv-unrolled-weightgrad.ts, conv-unrolled-inputgrad.ts): software adapters
//              without them (SwiftShader)
//   register   register tiles, no workgroup memory (shaders/conv.wgsl): any adapter
//   workgroup  tiles staged in workgroup memory (conv-workgroup.ts): the real-GPU design
//   stem       forward and weight gradient only, stride 1 with at most 4 input channels (an
//              image stem, conv-stem.ts): 4-pixel row strips, stored or read as vec4 rows;
//              and its 'narrow' forward for at most 4 output channels from more (the stem's
//              input gradient), where subgroups have a fixed size
// The other input gradients (strided, or padding past the window) are transposed convs: the
// subgroup design (conv-subgroup.ts), the unrolled one (conv-unrolled-inputgrad.ts) or the
// register kernel (conv.wgsl inputGrad). Which
// design and tile runs for a shape is engine/tuning.ts's choice among the candidates below:
// measured per adapter when tuning is on, else the rule in `forwardRule` / `inputGradRule` /
// `weightGradRule`.
import source from '../../shaders/conv.wgsl';
import { noGrad, record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams } from './conv-common.ts';
import { launch } from '../launch.ts';
import { keep } from '../scope.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { choose } from '../tuning.ts';
import type { Candidate } from '../tuning.ts';
import { engine } from '../device.ts';
import { hasUnrolledSubgroups, unrolledForward } from './conv-unrolled.ts';
import { unrolledInputGrad } from './conv-unrolled-inputgrad.ts';
import { unrolledWeightGrad } from './conv-unrolled-weightgrad.ts';
import { subgroupConvOffered, subgroupForward, subgroupInputGrad, subgroupWeightGrad, rowVectorFits, dyRowVectorFits } from './conv-subgroup.ts';
import type { ForwardTile, InputGradTile, WeightGradTile } from './conv-subgroup.ts';
import { workgroupForward, workgroupTileFits, workgroupWeightGrad } from './conv-workgroup.ts';
import { stemForward, stemNarrowPreferred, stemForwardTiles, stemWeightGrad, stemWeightGradTiles } from './conv-stem.ts';
import type { StemTile } from './conv-stem.ts';
import type { WorkgroupTile } from './conv-workgroup.ts';
import { isPointwiseWindow, pointwiseInputGrad, pointwiseWeightGrad } from './conv-pointwise.ts';
import type { PointwiseTile } from './conv-pointwise.ts';
import { add } from './elementwise.ts';
import { matmul } from './matmul.ts';
import { sum } from './reduce.ts';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
}

const bindings = { inputs: { In0: 'f32', In1: 'f32' }, outputs: { Out: 'f32' } } as const;

const kernels = declareKernels({
  name: 'conv2d',
  source,
  // The params are a ConvGeometry.
  params: convGeometryParams,
  defines: { KH: 'u32', KW: 'u32', STRIDE: 'u32', TC: 'u32', FLIPPED: 'bool', WG_X: 'u32', WG_Y: 'u32' },
  entryPoints: { forward: bindings, inputGrad: bindings, weightGrad: bindings },
});

export interface ConvGeometry {
  N: number; Cin: number; H: number; W: number;
  Cout: number; OH: number; OW: number;
  kH: number; kW: number; stride: number; pad: number;
}

export function conv2dGeometry(x: Tensor, weight: Tensor, opts: Conv2dOptions): ConvGeometry {
  checkDtype('conv2d', 'f32', x, weight);
  if (x.ndim !== 4) throw new RangeError(`conv2d: input must be NCHW (4 dims), got ${x.describe()}`);
  if (weight.ndim !== 4) throw new RangeError(`conv2d: weight must be [Cout, Cin, kH, kW], got ${weight.describe()}`);
  const [N, Cin, H, W] = x.shape;
  const [Cout, wCin, kH, kW] = weight.shape;
  if (wCin !== Cin) throw new RangeError(`conv2d: input has ${Cin} channels but weight ${weight.describe()} expects ${wCin}`);
  const stride = opts.stride ?? 1;
  const pad = opts.padding ?? 0;
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(pad) || pad < 0) {
    throw new RangeError(`conv2d: stride must be a positive integer and padding a non-negative integer (got ${stride}, ${pad})`);
  }
  const OH = Math.floor((H + 2 * pad - kH) / stride) + 1;
  const OW = Math.floor((W + 2 * pad - kW) / stride) + 1;
  if (OH < 1 || OW < 1) throw new RangeError(`conv2d: kernel ${kH}x${kW} does not fit input ${H}x${W} with padding ${pad}`);
  return { N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad };
}

function convKernel(entry: 'forward' | 'inputGrad' | 'weightGrad', g: ConvGeometry, in0: Tensor, in1: Tensor, outShape: number[], rows: number, cols: number, flipped = false): Tensor {
  const out = Tensor.empty(outShape);
  // Only the forward kernel is specialized on the window; the others share one pipeline each.
  const window = entry === 'forward'
    ? { KH: g.kH, KW: g.kW, STRIDE: g.stride, TC: forwardTileWidth(g.OW), FLIPPED: flipped }
    : { KH: 1, KW: 1, STRIDE: 1, TC: 8, FLIPPED: false };
  // 64 invocations, each 8 rows x 8 columns of the GEMM; at most as many rows as there are.
  const wgY = rows <= 8 ? 1 : rows <= 16 ? 2 : 4;
  const wgX = 64 / wgY;
  launch(kernels[entry], {
    label: `conv2d.${entry} ${in0.describe()}, ${in1.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad}`,
    inputs: { In0: in0, In1: in1 },
    outputs: { Out: out },
    params: g,
    defines: { ...window, WG_X: wgX, WG_Y: wgY },
    workgroups: [Math.ceil(cols / (8 * wgX)), Math.ceil(rows / (8 * wgY)), 1],
  });
  return out;
}

/** Output columns per forward tile (8 / this many rows): narrow maps get narrow, tall tiles. */
function forwardTileWidth(OW: number): number {
  return OW > 4 ? 8 : OW > 2 ? 4 : OW;
}

const isPointwise = (g: ConvGeometry) => g.kH === 1 && g.kW === 1 && g.stride === 1 && g.pad === 0;

type Variant<T> = { design: 'register' } | { design: 'unrolled' } | { design: 'workgroup'; tile: WorkgroupTile } | { design: 'subgroup'; tile: T } | { design: 'stem'; tile: StemTile };
/** The 1x1 GEMM kernels (conv-pointwise.ts) serve the weight and strided input gradients. */
type PointwiseVariant = { design: 'pointwise'; tile: PointwiseTile };
type WeightGradVariant = Variant<WeightGradTile> | PointwiseVariant;
/** The strided input gradient has no workgroup-memory design. */
type InputGradVariant = { design: 'register' } | { design: 'unrolled' } | { design: 'subgroup'; tile: InputGradTile } | PointwiseVariant;

/** The workgroup-memory tile every adapter that fits it is offered: 16 x 16 invocations of
 * 4 x 4 outputs, 16 values of the sum per step (256 invocations: SwiftShader's limit). */
const WORKGROUP_TILE: WorkgroupTile = { WG_M: 16, WG_N: 16, TM: 4, TN: 4, TK: 16 };

/** Software adapters (lavapipe, SwiftShader) run workgroup memory and barriers as slow scalar
 * code; elsewhere workgroup memory is the fast path. Only the rules use this; tuning measures. */
function softwareAdapter(): boolean {
  const a = engine().adapter;
  return a.isFallbackAdapter || a.architecture === 'software' || a.architecture === 'swiftshader' || /llvmpipe|lavapipe|swiftshader/i.test(a.description);
}

function shapeKey(g: ConvGeometry): string {
  return `N${g.N} C${g.Cin} ${g.H}x${g.W} O${g.Cout} k${g.kH}x${g.kW} s${g.stride} p${g.pad}`;
}

/** Output channels per invocation the subgroup kernels may use: a multiple of 4, or every
 * channel when there are at most 4; fewer for big windows (the unrolled body grows with both). */
function channelBlocks(Cout: number, taps: number): number[] {
  if (Cout <= 4) return [Cout];
  const most = taps <= 9 ? 16 : taps <= 25 ? 8 : 4;
  return [16, 8, 4].filter((r) => r <= most && (r === 4 || r <= Math.ceil(Cout / 4) * 4));
}

function designCandidates<T>(subgroup: Candidate<Variant<T>>[]): Candidate<Variant<T>>[] {
  const list: Candidate<Variant<T>>[] = [...subgroup, { name: 'register', config: { design: 'register' } }];
  if (workgroupTileFits(WORKGROUP_TILE)) list.push({ name: 'workgroup 64x64', config: { design: 'workgroup', tile: WORKGROUP_TILE } });
  return list;
}

/** The design the rules pick when nothing was measured: subgroup where it exists; on other
 * software adapters the unrolled kernel where the op has one (SwiftShader keeps the register
 * design's loop-indexed arrays in memory: 5-7x slower there), else register; workgroup memory
 * on real GPUs. */
function ruleDesign(candidates: Candidate<{ design: string }>[], subgroupPick: number): number {
  if (candidates[0].config.design === 'subgroup') return subgroupPick;
  const wants = softwareAdapter() ? ['unrolled', 'register'] : ['workgroup'];
  for (const want of wants) {
    const i = candidates.findIndex((c) => c.config.design === want);
    if (i >= 0) return i;
  }
  return 0;
}

function forwardCandidates(g: ConvGeometry): Candidate<Variant<ForwardTile>>[] {
  const subgroup: Candidate<Variant<ForwardTile>>[] = [];
  if (subgroupConvOffered()) {
    // Pixel tiles, the rule's first: where 4-wide tiles would run past the map's edge, tiles of
    // the rows split evenly into at most 8 columns (a 7- or 14-wide map: 7 columns, none past the
    // edge; at stride 2 they read their input as vec2s); 2x8 where rows are multiples of 8; then
    // tiles of 8 or 4 pixels as wide as the map allows.
    const base = g.OW >= 4 ? [[2, 4], [1, 4]] : g.OW >= 2 ? [[2, 2], [4, 2]] : [[4, 1], [8, 1]];
    const even = Math.ceil(g.OW / Math.ceil(g.OW / 8));
    const shapes = g.OW > 4 && g.OW % 4 !== 0 && even % 4 !== 0 ? [[2, even], [1, even], ...base] : g.OW % 8 === 0 ? [[2, 8], ...base] : base;
    // Blocks of 32 output channels for 3x3 windows where there are that many: each input value
    // a lane loads then serves twice the multiply-adds (the loads, a loop over the lanes for
    // every component, are most of the kernel's time on lavapipe).
    const blocks = g.Cout >= 32 && g.kH * g.kW <= 9 ? [32, 16] : channelBlocks(g.Cout, g.kH * g.kW).slice(0, 2);
    for (const R of blocks) {
      for (const [TR, TC] of shapes) subgroup.push({ name: `subgroup ${R}x${TR}x${TC}`, config: { design: 'subgroup', tile: { R, TR, TC } } });
      // The same tiles reading input rows as vectors, the widest that fits.
      for (const [TR, TC] of shapes) {
        const v = ([4, 2] as const).find((w) => rowVectorFits(w, TC, g));
        if (v) subgroup.push({ name: `subgroup ${R}x${TR}x${TC} vec${v}`, config: { design: 'subgroup', tile: { R, TR, TC, rowVector: v } } });
      }
    }
  }
  // The unrolled kernel (every accumulator a named variable) on any adapter with subgroups of 4
  // or more: the fast one where subgroups are not 8 wide and loops are not unrolled by the
  // compiler (SwiftShader).
  return [...designCandidates([...subgroup, ...unrolledCandidate<ForwardTile>()]), ...stemCandidates<ForwardTile>(g, stemForwardTiles)];
}

/** The stem kernels' tiles where they fit `g` (after the others: the rules index from the front). */
function stemCandidates<T>(g: ConvGeometry, tiles: (g: ConvGeometry) => StemTile[]): Candidate<Variant<T>>[] {
  const name = (t: StemTile) => (t.rolling ? `stem narrow rolling ${t.R}/${t.perChunk}` : t.narrow ? `stem narrow ${t.R}/${t.perChunk}` : `stem ${t.R}/${t.perChunk}`);
  return tiles(g).map((tile) => ({ name: name(tile), config: { design: 'stem', tile } }));
}

/** On software adapters the rules take the stem kernel wherever it fits (its first tile). At
 * the small ResNet's stem (1->16 28x28) it was 2.5-3x faster than the rule's old pick on
 * lavapipe (N = 256) and 2.1-2.3x faster than the unrolled kernel in Chromium (SwiftShader,
 * N = 32); real GPUs are unmeasured. The narrow forward only where `stemNarrowPreferred`
 * (lavapipe: the stem's input gradient, 16->1 28x28 at N = 256, 1.3-1.4x faster than the
 * subgroup kernel; slower than unrolled on SwiftShader), its rolling walk first where it fits
 * (0.55-0.8 of the chunked narrow kernel's time there, interleaved, a loaded machine). */
function stemRule<T>(c: Candidate<Variant<T>>[], otherwise: number): number {
  const stem = c.findIndex((v) => v.config.design === 'stem' && (!v.config.tile.narrow || stemNarrowPreferred()));
  return stem >= 0 && softwareAdapter() ? stem : otherwise;
}

/** The unrolled design where it can run (subgroups of at least 4). */
function unrolledCandidate<T>(): Candidate<Variant<T>>[] {
  return hasUnrolledSubgroups() ? [{ name: 'unrolled', config: { design: 'unrolled' } }] : [];
}

/** Forward rule: the first subgroup tile (the widest channel block, the first pixel tile),
 * reading its input rows as vectors where they are aligned. */
function forwardRule(c: Candidate<Variant<ForwardTile>>[]): number {
  const first = c[0].config;
  const rows = first.design !== 'subgroup' ? -1 : c.findIndex(({ config: v }) => v.design === 'subgroup' && v.tile.rowVector !== undefined
    && v.tile.R === first.tile.R && v.tile.TR === first.tile.TR && v.tile.TC === first.tile.TC);
  return stemRule(c, ruleDesign(c, Math.max(rows, 0)));
}

function runForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped: boolean, v: Variant<ForwardTile>): Tensor {
  if (v.design === 'subgroup') return subgroupForward(x, weight, g, flipped, v.tile);
  if (v.design === 'workgroup') return workgroupForward(x, weight, g, flipped, v.tile);
  if (v.design === 'unrolled') return unrolledForward(x, weight, g, flipped);
  if (v.design === 'stem') return stemForward(x, weight, g, flipped, v.tile);
  // Columns of the forward GEMM are tiles of TR x TC output pixels (8 in all).
  const tc = forwardTileWidth(g.OW);
  const tiles = g.N * Math.ceil(g.OH / (8 / tc)) * Math.ceil(g.OW / tc);
  return convKernel('forward', g, weight, x, [g.N, g.Cout, g.OH, g.OW], g.Cout, tiles * 8, flipped);
}

/** Inputs of `g`'s shapes for measuring (`flipped`: the weight stored as [Cin, Cout, kH, kW]). */
function benchInputs(shapes: number[][]): Tensor[] {
  return shapes.map((s) => keep(Tensor.full(s, 0.5)));
}

/** The convolution without autograd (a forward kernel, or matmul for 1x1).
 * `flipped`: `weight` is the [Cin, Cout, kH, kW] weight of the conv whose stride-1 input
 * gradient this computes; the kernels read it transposed and rotated by 180 degrees. */
function conv2dForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped = false): Tensor {
  if (isPointwise(g) && !flipped) {
    // Y[n] = W[Cout, Cin] X[n][Cin, H*W]: NCHW makes this one batched matmul.
    const xv = x.view([g.N, g.Cin, g.H * g.W]);
    const wv = weight.view([g.Cout, g.Cin]);
    const y = matmul(wv, xv);
    const out = y.view([g.N, g.Cout, g.OH, g.OW]);
    for (const t of [xv, wv, y]) t.dispose();
    return out;
  }
  const candidates = forwardCandidates(g);
  const pick = choose('conv2d.forward', `${shapeKey(g)}${flipped ? ' flipped' : ''}`, candidates, forwardRule(candidates), () => {
    const [xb, wb] = benchInputs([[g.N, g.Cin, g.H, g.W], flipped ? [g.Cin, g.Cout, g.kH, g.kW] : [g.Cout, g.Cin, g.kH, g.kW]]);
    return { run: (v) => { runForward(xb, wb, g, flipped, v); }, dispose: () => { xb.dispose(); wb.dispose(); } };
  });
  return runForward(x, weight, g, flipped, pick.config);
}

/** The pointwise GEMM kernels' tiles (conv-pointwise.ts) for a 1x1 conv without padding,
 * where the subgroup kernels are offered: TM rows (the weight gradient's output channels, the
 * input gradient's input channels) x 8 columns (the weight gradient's input channels: 4 where
 * there are fewer than 64, else lanes idle; the small ResNet's 16->32 and 32->64 shortcuts,
 * wall ms of one call, 9 interleaved rounds, a heavily loaded machine: 32x8 2.1-5.4, 32x4
 * 6.3-15.1 GFLOP/s), the rule's TM first. Each weight-gradient tile splits the images into
 * chunks for some 256 invocations in all. Measured against each other
 * (wall ms of one call, medians of 7-15 interleaved rounds, a loaded machine; the weight
 * gradient at its best split): ResNet-18's 1x1 convs at batch 32, weight gradient 128x16x16
 * s1 16x8 14.1, 32x8 11.0, 64x8 9.6, 128x8 16.2, 64x4 11.0; 64->128 32x32 s2 32x8 8.5-9.0,
 * 64x8 7.3-7.7, 64x4 6.9-7.6, 128x4 9.0; its input gradient 16x8 7.3, 32x8 6.1-6.7, 64x8 6.6,
 * 64x4 7.9, 16x16 7.8. */
function pointwiseCandidates(g: ConvGeometry, op: 'inputGrad' | 'weightGrad'): Candidate<PointwiseVariant>[] {
  if (!subgroupConvOffered() || !isPointwiseWindow(g)) return [];
  const TN = 8;
  if (op === 'inputGrad') {
    return (g.Cin > 32 ? [32, 64] : [32, 16]).map((TM) => ({ name: `pointwise ${TM}x${TN}`, config: { design: 'pointwise', tile: { TM, TN, chunks: 1 } } }));
  }
  // Not with fewer than 8 input channels, where most lanes would idle (the stem kernels and the
  // rows kernel take those); 4 columns a lane where 8 would leave lanes idle.
  if (g.Cin < 8) return [];
  const columns = g.Cin >= 64 ? TN : 4;
  return (g.Cout > 32 ? [64, 32] : [32, 16]).map((TM) => {
    const perChunk = Math.ceil(Math.ceil(g.Cin / columns) / 8) * 8 * Math.ceil(g.Cout / TM);
    const chunks = Math.min(g.N, Math.ceil(256 / perChunk));
    return { name: `pointwise ${TM}x${columns} split${chunks}`, config: { design: 'pointwise', tile: { TM, TN: columns, chunks } } };
  });
}

function weightGradCandidates(g: ConvGeometry): Candidate<WeightGradVariant>[] {
  const subgroup: Candidate<Variant<WeightGradTile>>[] = [];
  if (subgroupConvOffered()) {
    const PX = Math.min(4, g.OW);
    // A workgroup is 8 channels (one subgroup) or, with 64 channels or more, 64 of them.
    const WG = g.Cin >= 64 ? 64 : 8;
    const rows = g.N * g.OH;
    // Split the sum so that there are some 32 workgroups, each with at least 8 rows of it.
    const groups = Math.ceil(g.Cin / WG);
    const blocks = channelBlocks(g.Cout, g.kH * g.kW).slice(0, 2);
    for (const R of blocks) {
      const split = Math.max(1, Math.min(Math.ceil(32 / (groups * Math.ceil(g.Cout / R))), Math.floor(rows / 8)));
      for (const chunks of split > 1 ? [split, 1] : [1]) {
        subgroup.push({ name: `subgroup ${R}x${PX} wg${WG} split${chunks}`, config: { design: 'subgroup', tile: { R, PX, chunks, WG } } });
      }
      // The same lanes reading vec4-aligned X (or a padded copy) and dY, 4 pixels a step, each
      // window's rows carried to the next output row's, the sum split over the images.
      const imageSplit = Math.max(1, Math.min(split, g.N));
      for (const chunks of imageSplit > 1 ? [imageSplit, 1] : [1]) {
        subgroup.push({ name: `subgroup ${R}x4 wg${WG} split${chunks} rolling`, config: { design: 'subgroup', tile: { R, PX: 4, chunks, WG, packed: 'rolling' } } });
      }
    }
    if (g.Cin < 8) {
      // Few input channels (the stem): lanes along the rows of the sum, one input channel a
      // workgroup of 8, split until there are some 32 workgroups of at least 32 rows.
      for (const R of [...blocks].reverse()) {
        const split = Math.max(1, Math.min(Math.ceil(32 / (g.Cin * Math.ceil(g.Cout / R))), Math.floor(rows / 32)));
        subgroup.push({ name: `subgroup ${R}x4 rows split${split}`, config: { design: 'subgroup', tile: { R, PX: 4, chunks: split, WG: 8, packed: 'rows' } } });
      }
    }
  }
  // As for the forward: the unrolled kernel (subgroups of 4 or more), the fast one on SwiftShader.
  return [...designCandidates([...subgroup, ...unrolledCandidate<WeightGradTile>()]), ...stemCandidates<WeightGradTile>(g, stemWeightGradTiles), ...pointwiseCandidates(g, 'weightGrad')];
}

/** Candidates for the input gradients that are not a flipped forward conv (strided ones):
 * the subgroup transposed conv, the register kernel, and the unrolled one (any adapter; the
 * fast one on SwiftShader). */
function inputGradCandidates(g: ConvGeometry): Candidate<InputGradVariant>[] {
  const list: Candidate<InputGradVariant>[] = [];
  if (subgroupConvOffered()) {
    // Blocks of stride x stride input pixels, some 8 to 32 pixels an invocation, measured best
    // first (8 channels x 2 x 4 blocks at stride 2); at most 64 vec4 accumulators (channel
    // groups x pixels), beyond which the unrolled body only grows.
    const s = g.stride;
    const shapes = s === 1 ? [[2, 4], [1, 4]] : s === 2 ? [[2, 4], [1, 4], [2, 2]] : [[1, 2], [1, 1], [2, 2]];
    const blocks = channelBlocks(g.Cin, g.kH * g.kW);
    for (const R of [...blocks.filter((r) => r === 8), ...blocks.filter((r) => r !== 8)]) {
      for (const [TR, TC] of shapes) {
        if (Math.ceil(R / 4) * TR * TC * s * s > 64) continue;
        list.push({ name: `subgroup ${R}x${TR}x${TC}`, config: { design: 'subgroup', tile: { R, TR, TC } } });
        // The same tile reading dY rows as vectors, the widest that fits.
        const v = ([4, 2] as const).find((w) => dyRowVectorFits(w, TC, g));
        if (v) list.push({ name: `subgroup ${R}x${TR}x${TC} vec${v}`, config: { design: 'subgroup', tile: { R, TR, TC, rowVector: v } } });
      }
    }
  }
  // Register first: the rule's fallback where it finds neither (real GPUs without subgroups of 8).
  list.push({ name: 'register', config: { design: 'register' } });
  if (hasUnrolledSubgroups()) list.push({ name: 'unrolled', config: { design: 'unrolled' } });
  return [...list, ...pointwiseCandidates(g, 'inputGrad')];
}

/** Input-gradient rule: for an unpadded 1x1 conv the first pointwise tile (ResNet-18's 64->128
 * 32x32 shortcut at batch 32, wall ms of one call, 7 interleaved rounds, a loaded machine: the
 * subgroup 16x2x2 vec2 tile that tuning had picked 9.6, pointwise 32x8 6.1); else the first
 * subgroup tile (8 channels where there are more than 4), reading dY rows as vectors where they
 * are aligned (the first such candidate); without subgroups of 8, unrolled on software adapters
 * and register elsewhere. */
function inputGradRule(c: Candidate<InputGradVariant>[]): number {
  const pointwise = c.findIndex((v) => v.config.design === 'pointwise');
  if (pointwise >= 0) return pointwise;
  const rows = c.findIndex((v) => v.config.design === 'subgroup' && v.config.tile.rowVector !== undefined);
  return ruleDesign(c, Math.max(rows, 0));
}

/** The names of the variants `op` may run at `g` on this adapter (tests run each). For
 * 'inputGrad', none where the input gradient is a matmul or a flipped forward conv (whose
 * variants are the forward's at the flipped geometry). */
export function conv2dVariants(op: 'forward' | 'inputGrad' | 'weightGrad', g: ConvGeometry): string[] {
  const transposed = !isPointwise(g) && !runsAsFlippedForward(g);
  const list = op === 'forward' ? forwardCandidates(g) : op === 'weightGrad' ? weightGradCandidates(g) : transposed ? inputGradCandidates(g) : [];
  return list.map((c) => c.name);
}

/** Weight-gradient rule, where the subgroup kernels run: for an unpadded 1x1 conv the first
 * pointwise tile (ResNet-18's 1x1 convs at batch 32, wall ms of one call, 7 interleaved rounds,
 * a loaded machine, rolling's rule tile -> pointwise 64x8: 128x16x16 s1 18.2 -> 9.6, 64->128
 * 32x32 s2 12.7 -> 7.3; pointwise 16x8, the matmul's rule tile, was no faster than rolling);
 * else with fewer than 8 input channels the
 * lanes along rows with the narrower channel block (the first such; the stem kernels take
 * precedence on software adapters; the 1->16 28x28 stem at batch 64, GPU ms, the retired
 * 'packed' kernel -> rows, 4.5 -> 1.9), else the rolling kernel with the widest channel block
 * split into some 32 workgroups (the first rolling), at every stride. The 'packed' kernel (the
 * same lanes, every window row reloaded from padded copies) against rolling, stride 2 (wall ms
 * of one call at batch 256, interleaved, a loaded machine): 16->32 28x28 43.0 -> 21.7, 32->64
 * 14x14 38.7 -> 23.1; ResNet-18's 64->128 32x32 at batch 32 112 -> 65, 128->256 16x16
 * 124 -> 72. Stride 1 (GPU ms of one call, timestamp queries, medians of 9 interleaved rounds,
 * a loaded machine, packed's rule pick -> the first rolling): ResNet-18 at batch 32 64x32x32
 * 206 -> 175, 128x16x16 274 -> 204, 256x8x8 329 -> 259, 512x4x4 304 -> 283, the 1x1 128x16x16
 * 55 -> 43; the small ResNet at batch 256 16x28x28 66 -> 51, 32x14x14 93 -> 68; the training
 * step's batch 64 16x28x28 14.2 -> 10.1, 32x14x14 26 -> 16, 64x7x7 22 -> 10, 128x4x4 45 -> 27.
 * Over every tile, rolling was also the fastest or within noise of it at the step's 1x1
 * stride-2 shortcuts, and at batches 1 and 2 (64x32x32 at batch 1: 2.2 against 4.3 for
 * packed's best tile, whose row chunks split the sum more finely). */
function weightGradRule(c: Candidate<WeightGradVariant>[]): number {
  const pointwise = c.findIndex((v) => v.config.design === 'pointwise');
  if (pointwise >= 0) return pointwise;
  const first = (kind: 'rows' | 'rolling') => c.findIndex((v) => v.config.design === 'subgroup' && v.config.tile.packed === kind);
  const rows = first('rows');
  // No pointwise candidates past this point (none are offered where the stem kernels fit).
  return stemRule(c as Candidate<Variant<WeightGradTile>>[], ruleDesign(c, rows >= 0 ? rows : Math.max(first('rolling'), 0)));
}

function runWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, v: WeightGradVariant): Tensor {
  if (v.design === 'pointwise') return pointwiseWeightGrad(gradOut, x, g, v.tile);
  if (v.design === 'subgroup') return subgroupWeightGrad(gradOut, x, g, v.tile);
  if (v.design === 'workgroup') return workgroupWeightGrad(gradOut, x, g, v.tile);
  if (v.design === 'unrolled') return unrolledWeightGrad(gradOut, x, g);
  if (v.design === 'stem') return stemWeightGrad(gradOut, x, g, v.tile);
  return convKernel('weightGrad', g, gradOut, x, [g.Cout, g.Cin, g.kH, g.kW], g.Cout, g.Cin * g.kH * g.kW);
}

/** Whether the input gradient at `g` is a forward conv with the flipped weight (stride 1 with
 * a square window and at most k-1 padding); the rest, but 1x1, are transposed convs. */
function runsAsFlippedForward(g: ConvGeometry): boolean {
  return g.stride === 1 && g.pad <= g.kH - 1 && g.pad <= g.kW - 1 && g.kH === g.kW;
}

/** dL/dX from dL/dY. */
export function conv2dInputGrad(gradOut: Tensor, weight: Tensor, g: ConvGeometry): Tensor {
  if (isPointwise(g)) {
    const gv = gradOut.view([g.N, g.Cout, g.H * g.W]);
    const wv = weight.view([g.Cout, g.Cin]);
    const dx = matmul(wv, gv, { transA: true });
    const out = dx.view([g.N, g.Cin, g.H, g.W]);
    for (const t of [gv, wv, dx]) t.dispose();
    return out;
  }
  if (runsAsFlippedForward(g)) {
    // Stride 1: the input gradient is a forward conv of dY with the transposed, flipped weight
    // and padding k-1-pad; the forward kernel reads the weight that way itself (no copy).
    const gt: ConvGeometry = { ...g, Cin: g.Cout, Cout: g.Cin, H: g.OH, W: g.OW, OH: g.H, OW: g.W, pad: g.kH - 1 - g.pad };
    return conv2dForward(gradOut, weight, gt, true);
  }
  const candidates = inputGradCandidates(g);
  const pick = choose('conv2d.inputGrad', shapeKey(g), candidates, inputGradRule(candidates), () => {
    const [gy, wb] = benchInputs([[g.N, g.Cout, g.OH, g.OW], [g.Cout, g.Cin, g.kH, g.kW]]);
    return { run: (v) => { runInputGrad(gy, wb, g, v); }, dispose: () => { gy.dispose(); wb.dispose(); } };
  });
  return runInputGrad(gradOut, weight, g, pick.config);
}

function runInputGrad(gradOut: Tensor, weight: Tensor, g: ConvGeometry, v: InputGradVariant): Tensor {
  if (v.design === 'pointwise') return pointwiseInputGrad(gradOut, weight, g, v.tile);
  if (v.design === 'subgroup') return subgroupInputGrad(gradOut, weight, g, v.tile);
  if (v.design === 'unrolled') return unrolledInputGrad(gradOut, weight, g);
  // Columns: per image row, `stride` phases of ceil(ceil(W/stride)/8) tiles of 8 pixels.
  const tilesPerRow = Math.ceil(Math.ceil(g.W / g.stride) / 8) * g.stride;
  return convKernel('inputGrad', g, gradOut, weight, [g.N, g.Cin, g.H, g.W], g.Cin, g.N * g.H * tilesPerRow * 8);
}

/** dL/dW from dL/dY and X. */
export function conv2dWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry): Tensor {
  if (isPointwise(g) && g.N === 1) {
    const gv = gradOut.view([g.Cout, g.H * g.W]);
    const xv = x.view([g.Cin, g.H * g.W]);
    const dw = matmul(gv, xv, { transB: true });
    const out = dw.view([g.Cout, g.Cin, 1, 1]);
    for (const t of [gv, xv, dw]) t.dispose();
    return out;
  }
  const candidates = weightGradCandidates(g);
  const pick = choose('conv2d.weightGrad', shapeKey(g), candidates, weightGradRule(candidates), () => {
    const [gy, xb] = benchInputs([[g.N, g.Cout, g.OH, g.OW], [g.N, g.Cin, g.H, g.W]]);
    return { run: (v) => { runWeightGrad(gy, xb, g, v); }, dispose: () => { gy.dispose(); xb.dispose(); } };
  });
  return runWeightGrad(gradOut, x, g, pick.config);
}

/** 2-D convolution (PyTorch's `F.conv2d` with integer stride and symmetric zero padding). */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const g = conv2dGeometry(x, weight, opts);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== g.Cout)) {
    throw new RangeError(`conv2d: bias must be [${g.Cout}], got ${bias.describe()}`);
  }
  let y = conv2dForward(x, weight, g);
  if (bias) {
    const b4 = bias.view([1, g.Cout, 1, 1]);
    // The bias add is part of this op's own backward (below), so it is not recorded separately.
    const yb = noGrad(() => add(y, b4));
    y.dispose();
    b4.dispose();
    y = yb;
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(y, 'conv2d', inputs, (gy) => [
    x.requiresGrad ? conv2dInputGrad(gy, weight, g) : null,
    weight.requiresGrad ? conv2dWeightGrad(gy, x, g) : null,
    bias?.requiresGrad ? sum(gy, [0, 2, 3]) : null,
  ]);
}
