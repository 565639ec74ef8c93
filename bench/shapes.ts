// The sizes a training step really runs at, derived from the model configurations
// (ssql/models/resnet.ts) rather than written out per benchmark: the small ResNet on 28x28x1 at
// batch 64 and the CIFAR ResNet-18 on 32x32x3 at batch 32, with their projector/predictor widths.
import type { Tensor } from '../engine/index.ts';
import { Rng } from '../engine/index.ts';
import { QConv2d, QLinear } from '../ssql/models/quant.ts';
import { RESNET18, SMALL_RESNET, SimSiamNet } from '../ssql/models/resnet.ts';
import type { ResNetConfig } from '../ssql/models/resnet.ts';
import type { ModelName } from '../ssql/train.ts';

export type Shape4 = [number, number, number, number];

export interface StepSizes {
  /** Short name used in case names ('small b64', 'r18 b32'). */
  label: string;
  model: ModelName;
  backbone: ResNetConfig;
  batch: number;
  /** Input images: channels, height = width. */
  channels: 1 | 3;
  size: number;
  /** Projector width (hidden = output) and predictor bottleneck (as bench/train.ts trains). */
  projDim: number;
  predHidden: number;
  /** The activation [N, C, H, W] of each stage (the stem's equals stage 1's), largest first. */
  activations: Shape4[];
}

/** Spatial size after a 3x3 stride-2 padding-1 convolution (each stage after the first). */
const halve = (s: number) => Math.floor((s + 2 - 3) / 2) + 1;

function stepSizes(label: string, model: ModelName, backbone: ResNetConfig, batch: number, channels: 1 | 3, size: number, projDim: number): StepSizes {
  let s = size;
  const activations = backbone.widths.map((c, i): Shape4 => {
    if (i > 0) s = halve(s);
    return [batch, c, s, s];
  });
  return { label, model, backbone, batch, channels, size, projDim, predHidden: projDim / 4, activations };
}

export const SMALL_STEP = stepSizes('small b64', 'small', SMALL_RESNET, 64, 1, 28, 512);
export const R18_STEP = stepSizes('r18 b32', 'resnet18', RESNET18, 32, 3, 32, 2048);

/** Both models, the small one first. */
export const STEPS: StepSizes[] = [SMALL_STEP, R18_STEP];

/** Every stage activation of both models; with `quick`, only the largest of each. */
export function activationShapes(quick: boolean): { model: StepSizes; shape: Shape4 }[] {
  return STEPS.flatMap((m) => (quick ? m.activations.slice(0, 1) : m.activations).map((shape) => ({ model: m, shape })));
}

export const shapeName = (shape: readonly number[]): string => shape.join('x');

/** The model of `m` (SimSiam: encoder with projector, and predictor), seeded. Dispose with
 * `disposeNet`. */
export function buildNet(m: StepSizes): SimSiamNet {
  const rng = new Rng(0);
  return new SimSiamNet({ backbone: { ...m.backbone, inChannels: m.channels }, projDim: m.projDim, predHidden: m.predHidden }, () => rng.next());
}

/** The weights SSQL fake-quantizes each step (every QConv2d and QLinear), in module order. */
export function quantizedWeights(net: SimSiamNet): Tensor[] {
  return net.namedModules().flatMap(([, mod]) => (mod instanceof QConv2d || mod instanceof QLinear ? [mod.weight] : []));
}

export function disposeNet(net: SimSiamNet): void {
  net.ctx.dispose();
  for (const t of [...net.parameters(), ...net.namedBuffers().map(([, b]) => b)]) t.dispose();
}
