// The pretraining loop for every method of the registry (ssql/methods/registry.ts), platform
// independent: data order, augmentation, the method's step, SGD with a per-epoch cosine
// schedule, and checkpoint state. The Node CLI (ssql/cli.ts) and the browser demo drive it.
import { Rng, SGD, Tensor, cosineLR, engine, keep, scope } from '../engine/index.ts';
import { Augmenter } from './data/augment.ts';
import type { LabeledImages } from './data/cifar.ts';
import { BitSampler } from './methods/method.ts';
import type { BitPair, BoundMethod, Method, MethodSettings, PretrainNet } from './methods/method.ts';
import { methodByName } from './methods/registry.ts';
import type { MethodName } from './methods/registry.ts';
import { RESNET18, RESNET34, RESNET50, SMALL_RESNET, TINY_RESNET } from './models/resnet.ts';
import type { ResNetConfig } from './models/resnet.ts';
import type { WeightGrad } from './models/quant.ts';
import type { SafeTensor } from './checkpoint/safetensors.ts';
import { CHECKPOINT_FORMAT, readConfig, readDatasetShape, readPosition, readRngStates, resumeDifferences, shapeText } from './checkpoint/state.ts';
import type { DatasetShape } from './checkpoint/state.ts';
import type { Module } from '../engine/index.ts';

export type { MethodName } from './methods/registry.ts';

export type ModelName = 'tiny' | 'small' | 'resnet18' | 'resnet34' | 'resnet50';

export interface TrainConfig extends MethodSettings {
  /** A name from the method registry (ssql/methods/registry.ts). */
  method: MethodName;
  model: ModelName;
  /** Projector width (hidden = output) and predictor bottleneck width. */
  projDim: number;
  predHidden: number;
  batchSize: number;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  seed: number;
  wbits: [number, number];
  abits: [number, number];
  /** Use only the first `subset` training images (0: all). */
  subset: number;
  /** Output size of the random resized crop (0: the source size). Smaller crops train faster. */
  cropSize?: number;
  /** Backward of the weight quantizers (docs/method.md#weight-scale-gradient). */
  weightGrad: WeightGrad;
  /** The dataset (the CLI's `--data`, directories made absolute); checked on resume. */
  data?: string;
}

export const DEFAULT_CONFIG: TrainConfig = {
  method: 'ssql', model: 'small', projDim: 512, predHidden: 128, batchSize: 256, epochs: 1,
  lr: 0.05, momentum: 0.9, weightDecay: 5e-4, seed: 0, wbits: [2, 8], abits: [4, 8], subset: 0,
  weightGrad: 'reference',
};

export function backboneConfig(model: ModelName, inChannels: number): ResNetConfig {
  const base = { tiny: TINY_RESNET, small: SMALL_RESNET, resnet18: RESNET18, resnet34: RESNET34, resnet50: RESNET50 }[model];
  return { ...base, inChannels };
}

/** One of the largest GPU tensors a training step allocates, and the options that size it. */
export interface TensorNeed {
  what: string;
  /** The command-line flags that make it larger. */
  flags: string;
  bytes: number;
}

/**
 * The largest tensors (f32) a training step of `config` on images of `shape` allocates, largest
 * first: the biggest activation (batch x channels x crop^2 at the widest full-resolution stage),
 * the projector's and predictor's weights and activations, the biggest conv weight. Computed
 * from the config alone, so a run can be refused before it builds anything a device cannot hold.
 */
export function largestTensors(config: TrainConfig, shape: DatasetShape): TensorNeed[] {
  const bc = backboneConfig(config.model, shape.channels);
  const expansion = bc.block === 'bottleneck' ? 4 : 1;
  const B = config.batchSize;
  const crop = config.cropSize || shape.height;
  const needs: TensorNeed[] = [{ what: `augmented views [${B}, ${shape.channels}, ${crop}, ${crop}]`, flags: '--batch, --crop', bytes: B * shape.channels * crop * crop * 4 }];
  let size = crop;
  let conv = { elements: bc.widths[0] * shape.channels * 9, text: `[${bc.widths[0]}, ${shape.channels}, 3, 3]` };
  let inPlanes = bc.widths[0];
  bc.widths.forEach((planes, i) => {
    if (i > 0) size = Math.ceil(size / 2);
    const channels = planes * expansion;
    needs.push({ what: `stage ${i + 1} activations [${B}, ${channels}, ${size}, ${size}]`, flags: '--batch, --crop, --model', bytes: B * channels * size * size * 4 });
    for (const [o, c, k] of [[planes, planes, 3], [planes, inPlanes, 1], [channels, planes, 1]]) {
      if (o * c * k * k > conv.elements) conv = { elements: o * c * k * k, text: `[${o}, ${c}, ${k}, ${k}]` };
    }
    inPlanes = channels;
  });
  needs.push({ what: `largest conv weight ${conv.text}`, flags: '--model', bytes: conv.elements * 4 });
  const feat = bc.widths[bc.widths.length - 1] * expansion;
  const P = config.projDim;
  const H = config.predHidden;
  needs.push(
    { what: `projector weight [${P}, ${Math.max(P, feat)}]`, flags: '--proj-dim', bytes: P * Math.max(P, feat) * 4 },
    { what: `projector activations [${B}, ${P}]`, flags: '--proj-dim, --batch', bytes: B * P * 4 },
    { what: `predictor weight [${H}, ${P}]`, flags: '--pred-hidden, --proj-dim', bytes: H * P * 4 },
    { what: `predictor activations [${B}, ${H}]`, flags: '--pred-hidden, --batch', bytes: B * H * 4 },
  );
  return needs.sort((a, b) => b.bytes - a.bytes);
}

/** Normalization constants per dataset shape (Fashion-MNIST for grey, CIFAR-10 for RGB). */
export function normalization(channels: number): { mean: number[]; std: number[] } {
  return channels === 1
    ? { mean: [0.2860], std: [0.3530] }
    : { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] };
}

export interface StepReport {
  epoch: number;
  step: number;
  lr: number;
  bits: BitPair | null;
  /** Kept tensors (caller reads, then disposes): total loss, FP term, quantized term. */
  loss: Tensor;
  fp: Tensor;
  quant: Tensor | null;
}

export class Trainer {
  readonly method: Method;
  readonly net: PretrainNet;
  readonly opt: SGD;
  readonly aug: Augmenter;
  readonly stepsPerEpoch: number;
  /** Position: epoch and step within it; `globalStep` counts every step taken. */
  epoch = 0;
  stepInEpoch = 0;
  globalStep = 0;
  /** The method bound to its network: losses, after-step hook, the trainable parameters. */
  readonly bound: BoundMethod;
  private readonly bitRng: Rng;
  private readonly orderRng: Rng;
  /** State of `orderRng` when the current epoch's order was drawn (to rebuild it on resume). */
  private epochOrderState: number[];
  private order: Uint32Array;
  private readonly sampler: BitSampler;
  private readonly count: number;
  private readonly imageBytes: number;
  private readonly staging: Uint8Array;

  constructor(readonly config: TrainConfig, readonly data: LabeledImages) {
    const c = config;
    this.count = c.subset > 0 ? Math.min(c.subset, data.count) : data.count;
    if (c.batchSize < 2) throw new RangeError(`batch size must be at least 2 (batch norm needs it), got ${c.batchSize}`);
    this.stepsPerEpoch = Math.floor(this.count / c.batchSize);
    if (this.stepsPerEpoch === 0) throw new RangeError(`batch size ${c.batchSize} exceeds the ${this.count} training images`);
    this.method = methodByName(c.method);
    const seeds = new Rng(c.seed);
    const netConfig = { backbone: backboneConfig(c.model, data.channels), projDim: c.projDim, predHidden: c.predHidden };
    this.bound = this.method.create(netConfig, seeds.next, c);
    this.net = this.bound.net;
    this.net.ctx.weightGrad = c.weightGrad;
    this.opt = new SGD(this.bound.trainable, { lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay });
    const { mean, std } = normalization(data.channels);
    this.aug = new Augmenter({ channels: data.channels as 1 | 3, height: data.height, width: data.width, outSize: c.cropSize || data.height, mean, std, seed: seeds.int(0, 2 ** 31) });
    this.bitRng = new Rng(seeds.int(0, 2 ** 31));
    this.orderRng = new Rng(seeds.int(0, 2 ** 31));
    this.sampler = new BitSampler(c.wbits, c.abits);
    this.imageBytes = data.channels * data.height * data.width;
    this.staging = new Uint8Array(c.batchSize * this.imageBytes);
    this.epochOrderState = this.orderRng.state();
    this.order = this.drawOrder();
  }

  /** The epoch's image order: a uniformly random permutation from the order generator. */
  private drawOrder(): Uint32Array {
    return this.orderRng.permutation(this.count);
  }

  get done(): boolean {
    return this.epoch >= this.config.epochs;
  }

  /** The learning rate of the current epoch: cosine decay per epoch (docs/method.md#training-recipe). */
  get lr(): number {
    return cosineLR(this.config.lr, this.epoch, this.config.epochs);
  }

  /** One training step. The returned loss tensors are kept: read and dispose them. */
  step(): StepReport {
    if (this.done) throw new Error('training is finished');
    const { batchSize } = this.config;
    const start = this.stepInEpoch * batchSize;
    for (let i = 0; i < batchSize; i++) {
      const src = this.order[start + i] * this.imageBytes;
      this.staging.set(this.data.images.subarray(src, src + this.imageBytes), i * this.imageBytes);
    }
    const lr = this.lr;
    this.opt.lr = lr;
    const bits = this.method.quantized ? this.sampler.draw(this.bitRng) : null;
    const [loss, fp, quant] = scope(() => {
      const batch = this.aug.uploadBatch(this.staging, batchSize);
      const x1 = this.aug.views(batch);
      const x2 = this.aug.views(batch);
      this.opt.zeroGrad();
      const l = this.bound.losses(x1, x2, bits);
      l.loss.backward();
      this.opt.step();
      this.bound.afterStep(this.config);
      batch.dispose();
      return [keep(l.loss), keep(l.fp), l.quant ? keep(l.quant) : null];
    });
    const report: StepReport = { epoch: this.epoch, step: this.globalStep, lr, bits, loss, fp, quant };
    this.globalStep++;
    if (++this.stepInEpoch >= this.stepsPerEpoch) {
      this.stepInEpoch = 0;
      this.epoch++;
      this.epochOrderState = this.orderRng.state();
      this.order = this.drawOrder();
    }
    return report;
  }

  /** Everything needed to continue exactly: tensors (model, momentum) and metadata. */
  async checkpoint(): Promise<{ tensors: Record<string, SafeTensor>; metadata: Record<string, string> }> {
    await engine().sync();
    const tensors: Record<string, SafeTensor> = {};
    for (const [name, t] of this.net.stateDict()) tensors[name] = await toSafe(t);
    for (const [name, p] of this.net.namedParameters()) {
      const buf = this.opt.momentumBuffer(p);
      if (buf) tensors[`optimizer.${name}.momentum_buffer`] = await toSafe(buf);
    }
    const dataset: DatasetShape = { channels: this.data.channels, height: this.data.height, width: this.data.width };
    const metadata = {
      format: CHECKPOINT_FORMAT,
      config: JSON.stringify(this.config),
      dataset: JSON.stringify(dataset),
      epoch: String(this.epoch),
      step_in_epoch: String(this.stepInEpoch),
      global_step: String(this.globalStep),
      rng: JSON.stringify({ aug: this.aug.state(), bits: this.bitRng.state(), order: this.epochOrderState }),
    };
    return { tensors, metadata };
  }

  /** Continue from `checkpoint()` output. The config must match it except for what
   * `resumeDifferences` allows to change; `source` (the file) names it in errors. */
  restore(tensors: Record<string, SafeTensor>, metadata: Record<string, string>, source = 'checkpoint'): void {
    const saved = readConfig(metadata, source);
    const { refusals } = resumeDifferences(saved, this.config);
    // The method's own settings, defaults filled in.
    for (const [key, fallback] of Object.entries(this.method.settings) as [keyof MethodSettings, number][]) {
      const [was, now] = [saved[key] ?? fallback, this.config[key] ?? fallback];
      if (was !== now) refusals.push(`${key}: the checkpoint was made with ${was}, this run has ${now}`);
    }
    const shape = readDatasetShape(metadata, source);
    if (shape && shapeText(shape) !== shapeText(this.data)) {
      refusals.push(`the checkpoint was trained on ${shapeText(shape)} images, this run's data is ${shapeText(this.data)}`);
    }
    if (refusals.length > 0) throw new Error(`${source}: cannot resume: ${refusals.join('; ')}`);
    const position = readPosition(metadata, source);
    if (position.stepInEpoch >= this.stepsPerEpoch) {
      throw new Error(`${source}: cannot resume: it stopped at step ${position.stepInEpoch} of an epoch, this run has ${this.stepsPerEpoch} steps an epoch`);
    }
    const rng = readRngStates(metadata, source);
    loadInto(this.net, tensors, source);
    scope(() => {
      for (const [name, p] of this.net.namedParameters()) {
        const m = tensors[`optimizer.${name}.momentum_buffer`];
        if (m && this.bound.trainable.includes(p)) this.opt.setMomentumBuffer(p, fromSafe(m, `optimizer.${name}.momentum_buffer`));
      }
    });
    this.epoch = position.epoch;
    this.stepInEpoch = position.stepInEpoch;
    this.globalStep = position.globalStep;
    this.aug.setState(rng.aug);
    this.bitRng.setState(rng.bits);
    this.orderRng.setState(rng.order);
    this.epochOrderState = rng.order;
    this.order = this.drawOrder();
    if (saved.weightGrad === undefined) {
      // Written before the option existed, so trained with plain STE: the run keeps it (a note
      // from resumeDifferences says so) and its next checkpoint records it.
      this.config.weightGrad = 'ste';
      this.net.ctx.weightGrad = 'ste';
    }
  }

  dispose(): void {
    this.opt.zeroGrad(); // the last step's gradients
    this.net.disposeContexts();
    for (const t of [...this.net.parameters(), ...this.net.namedBuffers().map(([, b]) => b)]) t.dispose();
    this.opt.dispose();
  }
}

/** Load a checkpoint's model tensors into `net` (every state-dict key must be present). */
export function loadInto(net: Module, tensors: Record<string, SafeTensor>, source: string): void {
  scope(() => {
    const state = new Map<string, Tensor>();
    for (const [name] of net.stateDict()) {
      const t = tensors[name];
      if (!t) throw new Error(`${source} lacks '${name}' (was it made with another model or width?)`);
      state.set(name, fromSafe(t, name));
    }
    net.loadStateDict(state);
  });
}

/** A tensor read back as a safetensors entry (i32 counters as int64, as PyTorch stores them). */
export async function toSafe(t: Tensor): Promise<SafeTensor> {
  const data = await t.toArray();
  if (t.dtype === 'i32') {
    // PyTorch stores counters (num_batches_tracked) as int64.
    return { dtype: 'I64', shape: [...t.shape], data: new Uint8Array(BigInt64Array.from(data as Int32Array, (v) => BigInt(v)).buffer) };
  }
  return { dtype: t.dtype === 'f32' ? 'F32' : 'U32', shape: [...t.shape], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function fromSafe(s: SafeTensor, name: string): Tensor {
  const aligned = new Uint8Array(s.data); // copy: typed-array views need aligned offsets
  if (s.dtype === 'F32') return Tensor.fromArray(new Float32Array(aligned.buffer), s.shape);
  if (s.dtype === 'I64') return Tensor.fromArray(Array.from(new BigInt64Array(aligned.buffer), Number), s.shape, { dtype: 'i32' });
  if (s.dtype === 'I32') return Tensor.fromArray(new Int32Array(aligned.buffer), s.shape, { dtype: 'i32' });
  throw new Error(`checkpoint tensor '${name}' has unsupported dtype ${s.dtype}`);
}
