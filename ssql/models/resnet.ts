// ResNet backbones for CIFAR-sized inputs (docs/method.md#architectures) with SSQL's quantizer placement
// (§3), and the SimSiam projector and predictor. Module and parameter names are torchvision's
// (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc.0 ...), so state dicts map 1:1 onto
// the reference code's.
import { Tensor } from '../../engine/index.ts';
import { BatchNorm1d, BatchNorm2d, Linear, Module, ReLU, Sequential } from '../../engine/index.ts';
import type { Random } from '../../engine/index.ts';
import { globalAvgPool } from '../../engine/index.ts';
import { ActQuant, QConv2d, QLinear, QuantContext } from './quant.ts';

export interface ResNetConfig {
  /** 'basic' (ResNet-18/34) or 'bottleneck' (ResNet-50). */
  block: 'basic' | 'bottleneck';
  /** Blocks per stage, e.g. [2, 2, 2, 2] for ResNet-18. */
  layers: number[];
  /** Channels per stage (before the bottleneck expansion), e.g. [64, 128, 256, 512]. */
  widths: number[];
  inChannels: number;
}

export const RESNET18: ResNetConfig = { block: 'basic', layers: [2, 2, 2, 2], widths: [64, 128, 256, 512], inChannels: 3 };
export const RESNET34: ResNetConfig = { block: 'basic', layers: [3, 4, 6, 3], widths: [64, 128, 256, 512], inChannels: 3 };
export const RESNET50: ResNetConfig = { block: 'bottleneck', layers: [3, 4, 6, 3], widths: [64, 128, 256, 512], inChannels: 3 };
/** The small ResNet for 28x28 grey images: one basic block a stage, widths 16/32/64/128. */
export const SMALL_RESNET: ResNetConfig = { block: 'basic', layers: [1, 1, 1, 1], widths: [16, 32, 64, 128], inChannels: 1 };
/** A tiny ResNet for tests and quick checks: the same structure at widths 4/8/16/32. */
export const TINY_RESNET: ResNetConfig = { block: 'basic', layers: [1, 1, 1, 1], widths: [4, 8, 16, 32], inChannels: 1 };

interface Block extends Module {
  readonly outChannels: number;
}

class BasicBlock extends Module implements Block {
  static readonly expansion = 1;
  readonly conv1: QConv2d;
  readonly bn1: BatchNorm2d;
  readonly act1: ActQuant;
  readonly conv2: QConv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Sequential | null;
  readonly actOut: ActQuant;
  readonly outChannels: number;

  constructor(ctx: QuantContext, inPlanes: number, planes: number, stride: number, random: Random) {
    super();
    this.outChannels = planes;
    this.conv1 = this.registerModule('conv1', new QConv2d(ctx, 'w', inPlanes, planes, 3, { stride, padding: 1, bias: false, random }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.act1 = this.registerModule('act1', new ActQuant(ctx, 'a'));
    this.conv2 = this.registerModule('conv2', new QConv2d(ctx, 'w', planes, planes, 3, { padding: 1, bias: false, random }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.downsample = stride !== 1 || inPlanes !== planes
      ? this.registerModule('downsample', new Sequential(new QConv2d(ctx, 'w', inPlanes, planes, 1, { stride, bias: false, random }), new BatchNorm2d(planes)))
      : null;
    this.actOut = this.registerModule('act_out', new ActQuant(ctx, 'a'));
  }

  forward(x: Tensor): Tensor {
    // Quantized after BN+ReLU; the pre-add output stays full precision (docs/method.md#placement). Each BN runs
    // fused with what follows it: ReLU and act1; the residual add, ReLU and act_out.
    const h = this.bn1.forwardFused(this.conv1.forward(x), { relu: true, act: this.act1.fusedAct() });
    const shortcut = this.downsample ? this.downsample.forward(x) : x;
    return this.bn2.forwardFused(this.conv2.forward(h), { residual: shortcut, relu: true, act: this.actOut.fusedAct() });
  }
}

class Bottleneck extends Module implements Block {
  static readonly expansion = 4;
  readonly conv1: QConv2d;
  readonly bn1: BatchNorm2d;
  readonly act1: ActQuant;
  readonly conv2: QConv2d;
  readonly bn2: BatchNorm2d;
  readonly act2: ActQuant;
  readonly conv3: QConv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Sequential | null;
  readonly actOut: ActQuant;
  readonly outChannels: number;

  constructor(ctx: QuantContext, inPlanes: number, planes: number, stride: number, random: Random) {
    super();
    const out = planes * Bottleneck.expansion;
    this.outChannels = out;
    this.conv1 = this.registerModule('conv1', new QConv2d(ctx, 'w', inPlanes, planes, 1, { bias: false, random }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.act1 = this.registerModule('act1', new ActQuant(ctx, 'a'));
    this.conv2 = this.registerModule('conv2', new QConv2d(ctx, 'w', planes, planes, 3, { stride, padding: 1, bias: false, random }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.act2 = this.registerModule('act2', new ActQuant(ctx, 'a'));
    this.conv3 = this.registerModule('conv3', new QConv2d(ctx, 'w', planes, out, 1, { bias: false, random }));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(out));
    this.downsample = stride !== 1 || inPlanes !== out
      ? this.registerModule('downsample', new Sequential(new QConv2d(ctx, 'w', inPlanes, out, 1, { stride, bias: false, random }), new BatchNorm2d(out)))
      : null;
    this.actOut = this.registerModule('act_out', new ActQuant(ctx, 'a'));
  }

  forward(x: Tensor): Tensor {
    const h1 = this.bn1.forwardFused(this.conv1.forward(x), { relu: true, act: this.act1.fusedAct() });
    const h2 = this.bn2.forwardFused(this.conv2.forward(h1), { relu: true, act: this.act2.fusedAct() });
    const shortcut = this.downsample ? this.downsample.forward(x) : x;
    return this.bn3.forwardFused(this.conv3.forward(h2), { residual: shortcut, relu: true, act: this.actOut.fusedAct() });
  }
}

/** A CIFAR ResNet: 3x3 stride-1 stem (8w8a), no max-pool, four stages, global average pool,
 * and an optional head registered as `fc` (the projector, for SimSiam). */
export class ResNet extends Module {
  readonly conv1: QConv2d;
  readonly bn1: BatchNorm2d;
  readonly stemAct: ActQuant;
  readonly stages: Sequential[];
  readonly featureDim: number;
  fc: Module | null = null;

  constructor(readonly ctx: QuantContext, readonly config: ResNetConfig, random: Random) {
    super();
    const [w0] = config.widths;
    this.conv1 = this.registerModule('conv1', new QConv2d(ctx, 'w8', config.inChannels, w0, 3, { padding: 1, bias: false, random }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(w0));
    this.stemAct = this.registerModule('act1', new ActQuant(ctx, 'a8'));
    let inPlanes = w0;
    this.stages = config.widths.map((planes, i) => {
      const blocks: Block[] = [];
      for (let b = 0; b < config.layers[i]; b++) {
        const stride = b === 0 && i > 0 ? 2 : 1;
        const block = config.block === 'basic'
          ? new BasicBlock(ctx, inPlanes, planes, stride, random)
          : new Bottleneck(ctx, inPlanes, planes, stride, random);
        inPlanes = block.outChannels;
        blocks.push(block);
      }
      return this.registerModule(`layer${i + 1}`, new Sequential(...blocks));
    });
    this.featureDim = inPlanes;
  }

  setHead(head: Module): void {
    this.fc = this.registerModule('fc', head);
  }

  /** Pooled backbone features [N, featureDim] (the head is not applied). */
  features(x: Tensor): Tensor {
    let h = this.bn1.forwardFused(this.conv1.forward(x), { relu: true, act: this.stemAct.fusedAct() });
    for (const stage of this.stages) h = stage.forward(h);
    return globalAvgPool(h);
  }

  forward(x: Tensor): Tensor {
    const f = this.features(x);
    return this.fc ? this.fc.forward(f) : f;
  }
}

export interface SimSiamConfig {
  backbone: ResNetConfig;
  /** Projector hidden and output width (2048 in the paper; 512 for the small ResNet). */
  projDim: number;
  /** Predictor bottleneck width (512 in the paper). */
  predHidden: number;
}

/** Projector (docs/method.md#architectures): Linear BN ReLU Linear BN ReLU Linear BN(affine=False),
 * linears 8-bit. The last linear's bias is frozen (requiresGrad false: no gradient, no update,
 * no weight decay), as official SimSiam does (docs/method.md#frozen-projector-bias). */
export function projector(ctx: QuantContext, inDim: number, dim: number, random: Random): Sequential {
  // Built in order: the layers draw their initialization from `random` one after the other.
  const first = new QLinear(ctx, 'w8', inDim, dim, { bias: false, random });
  const second = new QLinear(ctx, 'w8', dim, dim, { bias: false, random });
  const last = new QLinear(ctx, 'w8', dim, dim, { random });
  last.bias!.requiresGrad = false;
  return new Sequential(
    first, new BatchNorm1d(dim), new ReLU(),
    second, new BatchNorm1d(dim), new ReLU(),
    last, new BatchNorm1d(dim, { affine: false }),
  );
}

/** Predictor (docs/method.md#architectures): Linear BN ReLU Linear, never quantized. */
export function predictor(dim: number, hidden: number, random: Random): Sequential {
  return new Sequential(
    new Linear(dim, hidden, { bias: false, random }), new BatchNorm1d(hidden), new ReLU(),
    new Linear(hidden, dim, { random }),
  );
}

/** Encoder (backbone + projector as `fc`) and predictor, the parameters SimSiam and SSQL train. */
export class SimSiamNet extends Module {
  readonly ctx: QuantContext;
  readonly encoder: ResNet;
  readonly predictor: Sequential;

  constructor(readonly config: SimSiamConfig, random: Random) {
    super();
    this.ctx = new QuantContext();
    this.encoder = this.registerModule('encoder', new ResNet(this.ctx, config.backbone, random));
    this.encoder.setHead(projector(this.ctx, this.encoder.featureDim, config.projDim, random));
    this.predictor = this.registerModule('predictor', predictor(config.projDim, config.predHidden, random));
  }

  forward(x: Tensor): Tensor {
    return this.encoder.forward(x);
  }

  /** Release the quantization context's observers (tensors are disposed by the owner). */
  disposeContexts(): void {
    this.ctx.dispose();
  }
}
