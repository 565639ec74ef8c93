// Fake quantization and range observers (shaders/quant.wgsl; docs/method.md#quantizer-arithmetic).
//
// - `fakeQuantWeight(w, bits)`: symmetric, per output channel (axis 0). Without a `range` the
//   per-channel max|w| is reduced first (atomicMax per segment of a channel), then a
//   one-invocation dispatch applies the tensor-wide pass-through rule to a flag, then every
//   segment is quantized; with `range` (an AbsMaxObserver's) it quantizes with those ranges.
// - `fakeQuantAct(x, bits, observer)`: asymmetric, per tensor, with a MinMaxObserver's range.
// - Backward: straight-through (gradient where the rounded value fell inside the clamp range).
//   `scaleGrad: true` adds the reference code's gradient through the weight scale (the scale
//   there is computed from the weight inside the graph, so each channel's max-|w| element gets
//   an extra term). The default is `false`: the scale is treated as a constant, which is the
//   plain STE of docs/method.md#quantizer-arithmetic and of most QAT code; the extra term is small.
// - Nothing is saved for backward: it reads `w`/`x` and the observer's range as they are when
//   backward runs, so do not reset or update an observer between a forward and its backward
//   (SSQL resets at the start of a step). The fused weight path reduces the ranges again.
// - Bit-width 0, or a zero scale anywhere in the tensor: pass-through. Bits are uniforms, so a
//   new bit-width compiles nothing. No readback anywhere.
import fakeQuantSource from '../../shaders/fake-quant.wgsl';
import source from '../../shaders/quant.wgsl';
import { record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { fill, grid1d, launch } from '../launch.ts';
import { keep } from '../scope.ts';
import { Tensor, checkDtype } from '../tensor.ts';

const MAX_BITS = 16;
/** key(-inf) in the shader's order-preserving encoding: the empty-range state of both slots. */
const EMPTY_KEY = 0x007fffff;

const kernels = declareKernels({
  name: 'quant',
  source: `${source}\n${fakeQuantSource}`,
  params: {
    n: 'u32', // elements
    C: 'u32', // channels (weights)
    L: 'u32', // elements per channel (weights)
    bits: 'u32',
  },
  entryPoints: {
    observeAbsMax: { inputs: { W: 'vec4<f32>' }, outputs: { oaR: 'atomic<u32>' } },
    observeMinMax: { inputs: { omX: 'vec4<f32>' }, outputs: { omS: 'atomic<u32>' } },
    rangeFlag: { inputs: { rfR: 'f32' }, outputs: { FlagOut: 'u32' } },
    weightQuant: { inputs: { W: 'vec4<f32>', R: 'f32', Flag: 'u32' }, outputs: { wqY: 'vec4<f32>' } },
    weightBackward: { inputs: { W: 'vec4<f32>', R: 'f32', Flag: 'u32', wbG: 'vec4<f32>' }, outputs: { wbGW: 'vec4<f32>' } },
    weightBackwardScale: { inputs: { W: 'vec4<f32>', R: 'f32', Flag: 'u32', wsG: 'vec4<f32>' }, outputs: { wsGW: 'vec4<f32>', wsP: 'f32', wsA: 'u32' } },
    weightScaleFinal: { inputs: { W: 'vec4<f32>', sfFlag: 'u32', sfP: 'f32', sfA: 'u32' }, outputs: { sfGW: 'f32' } },
    actQuant: { inputs: { aqX: 'vec4<f32>', aqS: 'u32' }, outputs: { aqY: 'vec4<f32>' } },
    actBackward: { inputs: { abX: 'vec4<f32>', abG: 'vec4<f32>', abS: 'u32' }, outputs: { abGX: 'vec4<f32>' } },
  },
});

function params(n: number, C: number, L: number, bits: number) {
  return { n, C, L, bits };
}

/** Elements of a channel per invocation of the weight kernels (SEG in shaders/quant.wgsl). */
const SEGMENT = 32;
const WEIGHT_GROUP = 64;

/** Segments per channel, and the grid that gives each of a weight's segments an invocation. */
function segments(C: number, L: number): { segs: number; grid: [number, number, number] } {
  const segs = Math.ceil(L / SEGMENT);
  return { segs, grid: grid1d(C * segs, WEIGHT_GROUP) };
}

/** Per-channel max|w| of `w` folded into `range` (atomicMax; starts from its contents). */
function observeAbsMax(w: Tensor, C: number, L: number, range: Tensor, label: string): void {
  launch(kernels.observeAbsMax, {
    label, inputs: { W: w }, outputs: { oaR: range }, params: params(w.size, C, L, 0), workgroups: segments(C, L).grid,
  });
}

/** A u32 [1] flag: 1 when the tensor passes through (bits 0, or a zero range anywhere). */
function passThroughFlag(range: Tensor, C: number, bits: number, label: string): Tensor {
  const flag = Tensor.empty([1], 'u32');
  launch(kernels.rangeFlag, { label, inputs: { rfR: range }, outputs: { FlagOut: flag }, params: params(0, C, 0, bits), workgroups: [1, 1, 1] });
  return flag;
}

/** vec4s per invocation of actQuant/actBackward (PER) and observeMinMax (OBS_UNITS). */
const ACT_UNITS_PER_GROUP = 8 * 256;
const OBS_UNITS_PER_GROUP = 32 * 64;

export function checkBits(op: string, bits: number): void {
  if (!Number.isInteger(bits) || bits < 0 || bits > MAX_BITS) throw new RangeError(`${op}: bit-width ${bits} is not an integer in 0..${MAX_BITS}`);
}

function channels(op: string, w: Tensor): { C: number; L: number } {
  if (w.ndim < 1 || w.shape[0] === 0) throw new RangeError(`${op}: expected a weight with output channels on axis 0, got ${w.describe()}`);
  const C = w.shape[0];
  return { C, L: w.size / C };
}

// ---- observers -------------------------------------------------------------------------------

/** Per-output-channel max|w| (axis 0), accumulated over `observe()` calls until `reset()`.
 * `range` is an f32 [C] tensor on the GPU, owned by the observer (not freed by scopes). */
export class AbsMaxObserver {
  readonly range: Tensor;

  constructor(readonly channels: number) {
    this.range = keep(Tensor.zeros([channels]));
  }

  observe(w: Tensor): void {
    checkDtype('AbsMaxObserver.observe', 'f32', w);
    const { C, L } = channels('AbsMaxObserver.observe', w);
    if (C !== this.channels) throw new RangeError(`AbsMaxObserver.observe: ${w.describe()} has ${C} output channels, the observer ${this.channels}`);
    observeAbsMax(w, C, L, this.range, `observeAbsMax ${w.describe()}`);
  }

  reset(): void {
    fill(this.range, 0);
  }

  dispose(): void {
    this.range.dispose();
  }
}

/** Per-tensor min and max, accumulated over `observe()` calls (both views of a batch) until
 * `reset()`. `state` is a u32 [2] tensor in the shader's order-preserving encoding; read it
 * with `read()` (tests, logging) or hand the observer to `fakeQuantAct`. */
export class MinMaxObserver {
  readonly state: Tensor;

  constructor() {
    this.state = keep(Tensor.full([2], EMPTY_KEY, { dtype: 'u32' }));
  }

  observe(x: Tensor): void {
    checkDtype('MinMaxObserver.observe', 'f32', x);
    launch(kernels.observeMinMax, {
      label: `observeMinMax ${x.describe()}`,
      inputs: { omX: x }, outputs: { omS: this.state }, params: params(x.size, 0, 0, 0),
      workgroups: grid1d(Math.ceil(x.size / 4), OBS_UNITS_PER_GROUP),
    });
  }

  reset(): void {
    fill(this.state, EMPTY_KEY);
  }

  /** The observed range (a readback: not for the training loop). Empty: min +inf, max -inf. */
  async read(): Promise<{ min: number; max: number }> {
    const k = await this.state.toArray();
    return { min: -unkey(k[0]), max: unkey(k[1]) };
  }

  dispose(): void {
    this.state.dispose();
  }
}

function unkey(k: number): number {
  const bits = k & 0x80000000 ? k & 0x7fffffff : ~k >>> 0;
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, bits >>> 0, true);
  return v.getFloat32(0, true);
}

// ---- fake quantization -----------------------------------------------------------------------

export interface FakeQuantWeightOptions {
  /** Per-output-channel max|w|, f32 [C] (an AbsMaxObserver's `range`). Default: computed
   * from `w` itself in the same fused dispatch that quantizes it. */
  range?: Tensor;
  /** Add the reference code's gradient through the weight scale (default false: plain STE). */
  scaleGrad?: boolean;
}

/** Symmetric per-output-channel fake quantization of a weight (channels on axis 0). */
export function fakeQuantWeight(w: Tensor, bits: number, opts: FakeQuantWeightOptions = {}): Tensor {
  checkDtype('fakeQuantWeight', 'f32', w);
  checkBits('fakeQuantWeight', bits);
  const { C, L } = channels('fakeQuantWeight', w);
  const given = opts.range;
  if (given) {
    checkDtype('fakeQuantWeight range', 'f32', given);
    if (given.size !== C) throw new RangeError(`fakeQuantWeight: range ${given.describe()} does not have one value per output channel of ${w.describe()}`);
  }
  const { segs, grid } = segments(C, L);
  /** The ranges to quantize with: the given ones, or max|w| per channel reduced now. */
  const rangesOf = (what: string): Tensor => {
    if (given) return given;
    const r = Tensor.zeros([C]);
    observeAbsMax(w, C, L, r, `fakeQuantWeight${what} ranges ${w.describe()}`);
    return r;
  };
  const range = rangesOf('');
  const flag = passThroughFlag(range, C, bits, `fakeQuantWeight pass-through check ${w.describe()}`);
  const y = Tensor.empty(w.shape);
  launch(kernels.weightQuant, {
    label: `fakeQuantWeight ${w.describe()} bits ${bits}`,
    inputs: { W: w, R: range, Flag: flag }, outputs: { wqY: y }, params: params(w.size, C, L, bits), workgroups: grid,
  });
  flag.dispose();
  if (!given) range.dispose();
  return record(y, 'fakeQuantWeight', [w], (g) => {
    // Nothing is saved: backward reduces the ranges again (one more read of w), so a forward
    // whose backward never runs leaves nothing behind.
    const r = rangesOf(' backward');
    const flag = passThroughFlag(r, C, bits, `fakeQuantWeight backward pass-through check ${w.describe()}`);
    const gw = Tensor.empty(w.shape);
    const label = `fakeQuantWeight backward ${w.describe()} bits ${bits}`;
    const p = params(w.size, C, L, bits);
    if (opts.scaleGrad) {
      const partial = Tensor.empty([C * segs]);
      const first = Tensor.empty([C * segs], 'u32');
      launch(kernels.weightBackwardScale, {
        label, inputs: { W: w, R: r, wsG: g, Flag: flag }, outputs: { wsGW: gw, wsP: partial, wsA: first }, params: p, workgroups: grid,
      });
      launch(kernels.weightScaleFinal, {
        label: `fakeQuantWeight backward scale gradient ${w.describe()}`,
        inputs: { W: w, sfFlag: flag, sfP: partial, sfA: first }, outputs: { sfGW: gw }, params: p, workgroups: grid1d(C, WEIGHT_GROUP),
      });
      partial.dispose();
      first.dispose();
    } else {
      launch(kernels.weightBackward, { label, inputs: { W: w, R: r, wbG: g, Flag: flag }, outputs: { wbGW: gw }, params: p, workgroups: grid });
    }
    flag.dispose();
    if (!given) r.dispose();
    return [gw];
  });
}

/** Asymmetric per-tensor fake quantization of an activation with an observer's range. */
export function fakeQuantAct(x: Tensor, bits: number, observer: MinMaxObserver): Tensor {
  checkDtype('fakeQuantAct', 'f32', x);
  checkBits('fakeQuantAct', bits);
  const y = Tensor.empty(x.shape);
  const groups = grid1d(Math.ceil(x.size / 4), ACT_UNITS_PER_GROUP);
  launch(kernels.actQuant, {
    label: `fakeQuantAct ${x.describe()} bits ${bits}`,
    inputs: { aqX: x, aqS: observer.state }, outputs: { aqY: y }, params: params(x.size, 0, 0, bits), workgroups: groups,
  });
  return record(y, 'fakeQuantAct', [x], (g) => {
    const gx = Tensor.empty(x.shape);
    launch(kernels.actBackward, {
      label: `fakeQuantAct backward ${x.describe()} bits ${bits}`,
      inputs: { abX: x, abG: g, abS: observer.state }, outputs: { abGX: gx }, params: params(x.size, 0, 0, bits), workgroups: groups,
    });
    return [gx];
  });
}
