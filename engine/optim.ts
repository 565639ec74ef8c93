// SGD with momentum, dampening, weight decay and Nesterov, in PyTorch's exact update order
// (shaders/sgd.wgsl), in place, several parameters per dispatch (one per parameter on the
// reference path), no readback; and learning-rate schedules as small pure functions of the
// epoch or step.
import source from '../shaders/sgd.wgsl';
import { declareKernels } from './kernels.ts';
import { launch } from './launch.ts';
import { keep } from './scope.ts';
import { Tensor, checkDtype } from './tensor.ts';
import { mulScalar } from './ops/elementwise.ts';
import { referenceKernels } from './ops/kernel-path.ts';
import { inGroupsOf, slotLayout } from './ops/slots.ts';

const V4 = 'vec4<f32>';
const kernels = declareKernels({
  name: 'sgd',
  source,
  params: {
    // Per slot (parameter) of a dispatch: its vec4s, its first workgroup.
    counts: 'vec4<u32>', starts: 'vec4<u32>',
    firstMask: 'u32', // bit k: slot k's first step (buf = d)
    nesterov: 'u32',
    lr: 'f32', momentum: 'f32', dampening: 'f32', weightDecay: 'f32',
  },
  entryPoints: {
    sgdPlain: { inputs: { G: V4 }, outputs: { P: V4 } },
    sgdMomentum: { inputs: { G: V4 }, outputs: { P: V4, BUF: V4 } },
    sgdPlain4: { inputs: { G0: V4, G1: V4, G2: V4, G3: V4 }, outputs: { P0: V4, P1: V4, P2: V4, P3: V4 } },
    sgdMomentum2: { inputs: { MG0: V4, MG1: V4 }, outputs: { MP0: V4, MP1: V4, MB0: V4, MB1: V4 } },
  },
});

interface Update {
  p: Tensor;
  g: Tensor;
  buf: Tensor | null;
  first: boolean;
}

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
    // A dispatch updates several parameters in place: one storage cannot be two of them.
    const seen = new Set<GPUBuffer>();
    for (const p of this.params) {
      if (seen.has(p.buffer)) throw new RangeError(`SGD: ${p.describe()} is given twice (or shares storage with another parameter)`);
      seen.add(p.buffer);
    }
  }

  /** Update every parameter that requires grad and has a gradient, in place. */
  step(): void {
    const updates: Update[] = [];
    for (const p of this.params) {
      const g = p.grad;
      if (!p.requiresGrad || !g) continue;
      if (g.size !== p.size) throw new RangeError(`SGD: gradient ${g.describe()} does not match ${p.describe()}`);
      let buf = this.buffers.get(p) ?? null;
      const first = this.momentum !== 0 && !buf;
      if (this.momentum !== 0 && !buf) {
        buf = keep(Tensor.empty(p.shape));
        this.buffers.set(p, buf);
      }
      updates.push({ p, g, buf, first });
    }
    // Parameters with no elements have nothing to update (and would make an empty slot).
    const live = updates.filter((u) => u.p.size > 0);
    const perDispatch = referenceKernels() ? 1 : this.momentum !== 0 ? 2 : 4;
    for (const group of inGroupsOf(live, perDispatch)) this.launchGroup(group);
  }

  /** One dispatch updating every parameter of `group` (1, or exactly 2 with momentum, 4 without). */
  private launchGroup(group: Update[]): void {
    const { counts, starts, workgroups } = slotLayout(group.map((u) => u.p.size));
    const params = {
      counts, starts, firstMask: group.reduce((m, u, k) => m | ((u.first ? 1 : 0) << k), 0), nesterov: this.nesterov ? 1 : 0,
      lr: this.lr, momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay,
    };
    const label = `sgd ${group.map((u) => u.p.describe()).join(', ')}`;
    const [a, b, c, d] = group;
    if (this.momentum !== 0) {
      if (group.length === 1) launch(kernels.sgdMomentum, { label, params, workgroups, inputs: { G: a.g }, outputs: { P: a.p, BUF: a.buf! } });
      else launch(kernels.sgdMomentum2, { label, params, workgroups, inputs: { MG0: a.g, MG1: b.g }, outputs: { MP0: a.p, MP1: b.p, MB0: a.buf!, MB1: b.buf! } });
    } else if (group.length < 4) {
      for (const u of group) {
        const one = slotLayout([u.p.size]);
        launch(kernels.sgdPlain, {
          label: `sgd ${u.p.describe()}`, params: { ...params, counts: one.counts, starts: one.starts, firstMask: 0 },
          workgroups: one.workgroups, inputs: { G: u.g }, outputs: { P: u.p },
        });
      }
    } else {
      launch(kernels.sgdPlain4, { label, params, workgroups, inputs: { G0: a.g, G1: b.g, G2: c.g, G3: d.g }, outputs: { P0: a.p, P1: b.p, P2: c.p, P3: d.p } });
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
