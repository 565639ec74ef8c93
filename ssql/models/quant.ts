// Quantized execution (docs/method.md#placement): one copy of the weights, and a shared `QuantContext`
// that switches every quantizer of a model between
//   'off'        plain full precision,
//   'calibrate'  full precision while recording activation ranges (min/max over every call
//                until the next reset: both views of a batch),
//   'quantize'   weights fake-quantized per output channel from their own current ranges,
//                activations fake-quantized with the recorded ranges.
// Each quantizer has a role that fixes its bit-width: 'w'/'a' follow the step's sampled bits,
// 'w8'/'a8' are fixed at 8 (the stem and the projector).
import { Tensor } from '../../engine/index.ts';
import { Conv2d, Linear, Module } from '../../engine/index.ts';
import type { BatchNormAct, Conv2dOptions, LinearOptions } from '../../engine/index.ts';
import { AbsMaxObserver, MinMaxObserver, fakeQuantAct, fakeQuantWeight } from '../../engine/index.ts';

export type QuantMode = 'off' | 'calibrate' | 'quantize';
export type WeightRole = 'w' | 'w8';
export type ActRole = 'a' | 'a8';

/** What `withQuantization` sets: a mode, and for 'quantize' the bit-widths of the 'w' and 'a'
 * roles (0 = leave that kind unquantized). */
export type QuantSetting = { mode: 'off' | 'calibrate' } | { mode: 'quantize'; wbit: number; abit: number };

/** The weight quantizers' backward (docs/method.md#weight-scale-gradient): 'reference' adds the
 * gradient through the per-channel weight scale that the reference code's autograd gives;
 * 'ste' treats the scale as a constant (plain straight-through). */
export type WeightGrad = 'reference' | 'ste';

export const WEIGHT_GRADS: readonly WeightGrad[] = ['reference', 'ste'];

export class QuantContext {
  private current: { mode: QuantMode; wbit: number; abit: number } = { mode: 'off', wbit: 0, abit: 0 };
  /** The weight quantizers' backward; the reference code's by default. */
  weightGrad: WeightGrad = 'reference';
  /** Bumped by `newStep()`; quantized weights are cached per generation. */
  generation = 0;
  private readonly actQuantizers: ActQuant[] = [];
  private readonly weightQuantizers: WeightQuantizer[] = [];

  get mode(): QuantMode {
    return this.current.mode;
  }

  /** Bit-widths for the 'w' and 'a' roles in 'quantize' mode (0 outside it). */
  get wbit(): number {
    return this.current.wbit;
  }

  get abit(): number {
    return this.current.abit;
  }

  /**
   * Runs `fn` with every quantizer of this context at `setting`, then restores the previous
   * mode and bit-widths, also when `fn` throws or its promise rejects. Scopes nest. The only
   * way to change the setting, so no caller saves and restores it by hand. An async `fn` keeps
   * the setting until its promise settles: do not interleave two on one context.
   */
  withQuantization<T>(setting: QuantSetting, fn: () => Promise<T>): Promise<T>;
  withQuantization<T>(setting: QuantSetting, fn: () => T): T;
  withQuantization<T>(setting: QuantSetting, fn: () => T | Promise<T>): T | Promise<T> {
    const next = setting.mode === 'quantize'
      ? { mode: setting.mode, wbit: checkBits('wbit', setting.wbit), abit: checkBits('abit', setting.abit) }
      : { mode: setting.mode, wbit: 0, abit: 0 };
    const previous = this.current;
    this.current = next;
    const restore = () => {
      this.current = previous;
    };
    let result: T | Promise<T>;
    try {
      result = fn();
    } catch (e) {
      restore();
      throw e;
    }
    if (result instanceof Promise) return result.finally(restore);
    restore();
    return result;
  }

  register(q: ActQuant): void {
    this.actQuantizers.push(q);
  }

  registerWeight(q: WeightQuantizer): void {
    this.weightQuantizers.push(q);
  }

  /** Start a new step (or calibration): forget cached weights and all activation ranges. */
  newStep(): void {
    this.generation++;
    for (const q of this.actQuantizers) q.observer.reset();
  }

  /** The weights changed (an optimizer step) but the ranges stay: forget the cached quantized
   * weights only (quantization-aware fine-tuning with frozen ranges). */
  weightsChanged(): void {
    this.generation++;
  }

  weightBits(role: WeightRole): number {
    return role === 'w8' ? 8 : this.wbit;
  }

  actBits(role: ActRole): number {
    return role === 'a8' ? 8 : this.abit;
  }

  dispose(): void {
    for (const q of this.actQuantizers) q.observer.dispose();
    for (const q of this.weightQuantizers) q.unfreeze();
  }
}

function checkBits(what: string, bits: number): number {
  if (!Number.isInteger(bits) || bits < 0 || bits > 16) throw new RangeError(`withQuantization: ${what} must be an integer in 0..16 (0: unquantized), got ${bits}`);
  return bits;
}

/** Per-tensor activation quantizer at one point of the network (no parameters). */
export class ActQuant extends Module {
  readonly observer = new MinMaxObserver();

  constructor(readonly ctx: QuantContext, readonly role: ActRole) {
    super();
    ctx.register(this);
  }

  forward(x: Tensor): Tensor {
    if (this.ctx.mode === 'calibrate') {
      this.observer.observe(x);
      return x;
    }
    if (this.ctx.mode === 'quantize') return fakeQuantAct(x, this.ctx.actBits(this.role), this.observer);
    return x;
  }

  /** This quantizer's step fused into the batch norm that feeds it (batchNorm's `act`): the
   * same observe or fake quantization as `forward`, none in 'off' mode. */
  fusedAct(): BatchNormAct | null {
    if (this.ctx.mode === 'calibrate') return { kind: 'observe', observer: this.observer };
    if (this.ctx.mode === 'quantize') return { kind: 'quantize', observer: this.observer, bits: this.ctx.actBits(this.role) };
    return null;
  }
}

/** The weight a quantized layer computes with: cached for one generation, so both views of a
 * step share one fake-quantized weight (its gradient accumulates from both). The per-channel
 * ranges come from the weight itself, or, once frozen, stay what they were when frozen (the
 * reference's fine-tuning computes the weight scale once, at calibration). */
export class WeightQuantizer {
  private cached: { generation: number; bits: number; grad: WeightGrad; weight: Tensor } | null = null;
  private frozen: AbsMaxObserver | null = null;

  constructor(readonly ctx: QuantContext, readonly role: WeightRole) {
    ctx.registerWeight(this);
  }

  /** The frozen per-channel max|w| (f32 [C] on the GPU), or null. */
  get frozenRange(): Tensor | null {
    return this.frozen?.range ?? null;
  }

  /** Freeze the ranges at `weight`'s current per-channel max|w|, or at `values` when given. */
  freeze(weight: Tensor, values?: ArrayLike<number>): void {
    const C = weight.shape[0];
    if (values !== undefined && values.length !== C) throw new RangeError(`frozen weight range: ${values.length} values for ${C} output channels`);
    this.unfreeze();
    const obs = new AbsMaxObserver(C);
    if (values === undefined) obs.observe(weight);
    else {
      const t = Tensor.fromArray(Float32Array.from(values), [C]);
      obs.observe(t);
      t.dispose();
    }
    this.frozen = obs;
    this.cached = null;
  }

  unfreeze(): void {
    this.frozen?.dispose();
    this.frozen = null;
    this.cached = null;
  }

  apply(weight: Tensor): Tensor {
    const bits = this.ctx.weightBits(this.role);
    if (this.ctx.mode !== 'quantize' || bits === 0) return weight;
    const c = this.cached;
    const grad = this.ctx.weightGrad;
    if (c && c.generation === this.ctx.generation && c.bits === bits && c.grad === grad && !c.weight.disposed) return c.weight;
    const q = fakeQuantWeight(weight, bits, { scaleGrad: grad === 'reference', range: this.frozen?.range });
    this.cached = { generation: this.ctx.generation, bits, grad, weight: q };
    return q;
  }
}

export class QConv2d extends Conv2d {
  readonly quantizer: WeightQuantizer;

  constructor(ctx: QuantContext, role: WeightRole, inChannels: number, outChannels: number, kernelSize: number, opts: Conv2dOptions = {}) {
    super(inChannels, outChannels, kernelSize, opts);
    this.quantizer = new WeightQuantizer(ctx, role);
  }

  get typeName(): string {
    return 'Conv2d';
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, this.quantizer.apply(this.weight));
  }
}

export class QLinear extends Linear {
  readonly quantizer: WeightQuantizer;

  constructor(ctx: QuantContext, role: WeightRole, inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super(inFeatures, outFeatures, opts);
    this.quantizer = new WeightQuantizer(ctx, role);
  }

  get typeName(): string {
    return 'Linear';
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, this.quantizer.apply(this.weight));
  }
}
