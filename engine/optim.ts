// SGD with momentum, dampening, weight decay and Nesterov, in PyTorch's exact update order
// (shaders/sgd.wgsl), one in-place dispatch per parameter, no readback; and learning-rate
// schedules as small pure functions of the epoch or step.
import source from '../shaders/sgd.wgsl';
import { declareKernels } from './kernels.ts';
import { grid1d, launch } from './launch.ts';
import { keep } from './scope.ts';
import { Tensor, checkDtype } from './tensor.ts';
import { mulScalar } from './ops/elementwise.ts';

const kernels = declareKernels({
  name: 'sgd',
  source,
  params: {
    n: 'u32',
    first: 'u32', // 1 on a parameter's first step (buf = d)
    nesterov: 'u32',
    lr: 'f32', momentum: 'f32', dampening: 'f32', weightDecay: 'f32',
  },
  entryPoints: {
    sgdPlain: { inputs: { G: 'vec4<f32>' }, outputs: { P: 'vec4<f32>' } },
    sgdMomentum: { inputs: { G: 'vec4<f32>' }, outputs: { P: 'vec4<f32>', BUF: 'vec4<f32>' } },
  },
});

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD {
  /** Read at every step(): set it from a schedule (a uniform: changing it compiles nothing). */
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  readonly params: Tensor[];
  /** Momentum buffers, created on a parameter's first step (kept out of scopes). */
  private readonly buffers = new Map<Tensor, Tensor>();

  constructor(params: Iterable<Tensor>, opts: SGDOptions) {
    this.params = [...params];
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new RangeError('SGD: Nesterov momentum requires a momentum and zero dampening');
    checkDtype('SGD parameters', 'f32', ...this.params);
  }

  /** Update every parameter that requires grad and has a gradient, in place. */
  step(): void {
    for (const p of this.params) {
      const g = p.grad;
      if (!p.requiresGrad || !g) continue;
      if (g.size !== p.size) throw new RangeError(`SGD: gradient ${g.describe()} does not match ${p.describe()}`);
      let buf = this.buffers.get(p);
      const first = this.momentum !== 0 && !buf;
      if (this.momentum !== 0 && !buf) {
        buf = keep(Tensor.empty(p.shape));
        this.buffers.set(p, buf);
      }
      const params = {
        n: p.size, first: first ? 1 : 0, nesterov: this.nesterov ? 1 : 0,
        lr: this.lr, momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay,
      };
      const label = `sgd ${p.describe()}`;
      const workgroups = grid1d(Math.ceil(p.size / 4), 256);
      if (this.momentum !== 0) launch(kernels.sgdMomentum, { label, params, workgroups, inputs: { G: g }, outputs: { P: p, BUF: buf! } });
      else launch(kernels.sgdPlain, { label, params, workgroups, inputs: { G: g }, outputs: { P: p } });
    }
  }

  /** Drop all gradients (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The momentum buffer of a parameter (null before its first step or without momentum). */
  momentumBuffer(p: Tensor): Tensor | null {
    return this.buffers.get(p) ?? null;
  }

  /** Set a parameter's momentum buffer (restoring a checkpoint): its values are copied. */
  setMomentumBuffer(p: Tensor, values: Tensor): void {
    if (!this.params.includes(p)) throw new RangeError(`SGD.setMomentumBuffer: ${p.describe()} is not one of this optimizer's parameters`);
    if (values.dtype !== 'f32' || values.size !== p.size) throw new RangeError(`SGD.setMomentumBuffer: ${values.describe()} does not match ${p.describe()}`);
    this.buffers.get(p)?.dispose();
    this.buffers.set(p, keep(mulScalar(values, 1).view(p.shape)));
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}

// ---- learning-rate schedules ---------------------------------------------------------------

/** Cosine decay from `base` to `min` over `total` epochs (or steps):
 * base * 0.5 * (1 + cos(pi * t / total)) when min = 0 (docs/method.md#training-recipe, per epoch). */
export function cosineLR(base: number, t: number, total: number, min = 0): number {
  const c = Math.min(Math.max(t / total, 0), 1);
  return min + (base - min) * 0.5 * (1 + Math.cos(Math.PI * c));
}

/** Cosine decay per step: the epoch made fractional, step / stepsPerEpoch. */
export function cosineLRPerStep(base: number, step: number, stepsPerEpoch: number, epochs: number, min = 0): number {
  return cosineLR(base, step / stepsPerEpoch, epochs, min);
}

/** Step decay: base * gamma^(number of milestones <= epoch) (PyTorch's MultiStepLR). */
export function stepLR(base: number, epoch: number, milestones: readonly number[], gamma = 0.1): number {
  return base * gamma ** milestones.filter((m) => epoch >= m).length;
}

/** Linear warm-up: scales `lr` from `startFactor` at step 0 up to 1 at `warmupSteps`, then 1. */
export function linearWarmup(lr: number, step: number, warmupSteps: number, startFactor = 0): number {
  if (warmupSteps <= 0 || step >= warmupSteps) return lr;
  return lr * (startFactor + (1 - startFactor) * (step / warmupSteps));
}
