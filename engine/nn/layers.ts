// Layers with PyTorch's names, parameter order, state-dict keys and default initialization.
import { Tensor } from '../tensor.ts';
import { relu } from '../ops/elementwise.ts';
import { batchNorm } from '../ops/batchnorm.ts';
import type { BatchNormAct } from '../ops/batchnorm.ts';
import { conv2d } from '../ops/conv.ts';
import { linear } from '../ops/linear.ts';
import { avgPool2d, globalAvgPool, maxPool2d } from '../ops/pooling.ts';
import type { Pool2dOptions } from '../ops/pooling.ts';
import { Module } from './module.ts';
import { defaultRandom, kaimingUniformA5, uniform } from './init.ts';
import type { Random } from './init.ts';

export interface LinearOptions {
  bias?: boolean;
  /** Generator for the initial weights (default: the one manualSeed() seeds). */
  random?: Random;
}

/** nn.Linear: weight [out, in], bias [out]; both U(-1/sqrt(in), 1/sqrt(in)). */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const random = opts.random ?? defaultRandom();
    this.weight = this.registerParameter('weight', kaimingUniformA5([outFeatures, inFeatures], random))!;
    this.bias = this.registerParameter('bias', (opts.bias ?? true) ? uniform([outFeatures], inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0, random) : null);
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, this.weight);
  }

  /** The layer with another weight of the same shape in place of its own (e.g. a fake-quantized
   * copy of it); the bias is the layer's. */
  forwardWith(x: Tensor, weight: Tensor): Tensor {
    return linear(x, weight, this.bias);
  }
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  bias?: boolean;
  random?: Random;
}

/** nn.Conv2d (groups 1, dilation 1, zero padding): weight [Cout, Cin, kH, kW]. */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: number;
  readonly padding: number;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | [number, number], opts: Conv2dOptions = {}) {
    super();
    this.kernelSize = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    const random = opts.random ?? defaultRandom();
    const shape = [outChannels, inChannels, ...this.kernelSize];
    this.weight = this.registerParameter('weight', kaimingUniformA5(shape, random))!;
    const fanIn = inChannels * this.kernelSize[0] * this.kernelSize[1];
    this.bias = this.registerParameter('bias', (opts.bias ?? true) ? uniform([outChannels], fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0, random) : null);
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, this.weight);
  }

  /** The layer with another weight of the same shape in place of its own (e.g. a fake-quantized
   * copy of it); the bias, stride and padding are the layer's. */
  forwardWith(x: Tensor, weight: Tensor): Tensor {
    return conv2d(x, weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

export interface BatchNormModuleOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/** Shared by BatchNorm1d and BatchNorm2d: weight (gamma) 1, bias (beta) 0, running_mean 0,
 * running_var 1, num_batches_tracked 0 (i32 here; int64 in PyTorch). */
export abstract class BatchNormBase extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly numBatchesTracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number;
  protected abstract readonly ranks: readonly number[];

  constructor(readonly numFeatures: number, opts: BatchNormModuleOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    const affine = opts.affine ?? true;
    const track = opts.trackRunningStats ?? true;
    this.weight = this.registerParameter('weight', affine ? Tensor.full([numFeatures], 1) : null);
    this.bias = this.registerParameter('bias', affine ? Tensor.zeros([numFeatures]) : null);
    this.runningMean = this.registerBuffer('running_mean', track ? Tensor.zeros([numFeatures]) : null);
    this.runningVar = this.registerBuffer('running_var', track ? Tensor.full([numFeatures], 1) : null);
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', track ? Tensor.zeros([], { dtype: 'i32' }) : null);
  }

  forward(x: Tensor): Tensor {
    return this.run(x, false);
  }

  /** relu(bn(x)) in one pass forward and one backward. */
  forwardRelu(x: Tensor): Tensor {
    return this.run(x, true);
  }

  /** bn(x), plus a residual, a ReLU and the activation observer or fake quantization that
   * follows, fused into the same passes (batchNorm's `residual` and `act` options). */
  forwardFused(x: Tensor, opts: { relu?: boolean; residual?: Tensor | null; act?: BatchNormAct | null }): Tensor {
    return this.run(x, opts.relu ?? false, opts.residual ?? null, opts.act ?? null);
  }

  private run(x: Tensor, relu: boolean, residual: Tensor | null = null, act: BatchNormAct | null = null): Tensor {
    if (!this.ranks.includes(x.ndim)) throw new RangeError(`${this.typeName}: expected a ${this.ranks.join('-D or ')}-D input, got ${x.describe()}`);
    if (x.shape[1] !== this.numFeatures) throw new RangeError(`${this.typeName}(${this.numFeatures}): input ${x.describe()} has ${x.shape[1]} channels`);
    const batchStats = this.training || !this.runningMean;
    return batchNorm(x, this.weight, this.bias, {
      training: batchStats, momentum: this.momentum, eps: this.eps, relu, residual, act,
      runningMean: this.training ? this.runningMean : batchStats ? null : this.runningMean,
      runningVar: this.training ? this.runningVar : batchStats ? null : this.runningVar,
      numBatchesTracked: this.training ? this.numBatchesTracked : null,
    });
  }
}

/** nn.BatchNorm2d over (N, C, H, W). */
export class BatchNorm2d extends BatchNormBase {
  protected readonly ranks = [4] as const;
}

/** nn.BatchNorm1d over (N, C) or (N, C, L). */
export class BatchNorm1d extends BatchNormBase {
  protected readonly ranks = [2, 3] as const;
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/** nn.Sequential: children named '0', '1', ... run in order. */
export class Sequential extends Module {
  private readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }

  get length(): number {
    return this.layers.length;
  }

  at(i: number): Module {
    const m = this.layers[i < 0 ? i + this.layers.length : i];
    if (!m) throw new RangeError(`Sequential: no layer ${i} (it has ${this.layers.length})`);
    return m;
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.layers) y = m.forward(y);
    return y;
  }
}

/** nn.MaxPool2d (ceil_mode False); stride defaults to the kernel size. */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: number | [number, number], readonly opts: Pool2dOptions = {}) {
    super();
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.opts);
  }
}

/** nn.AvgPool2d (count_include_pad True, ceil_mode False). */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: number | [number, number], readonly opts: Pool2dOptions = {}) {
    super();
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.opts);
  }
}

/** (N, C, H, W) -> (N, C): nn.AdaptiveAvgPool2d(1) followed by flatten(1). */
export class GlobalAvgPool extends Module {
  forward(x: Tensor): Tensor {
    return globalAvgPool(x);
  }
}
