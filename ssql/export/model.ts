// A calibrated backbone captured for deployment: every weight, BN statistic and quantizer
// parameter of a ResNet at one bit setting, read back from the GPU into plain arrays, in the
// order the forward pass uses them. The ONNX writer (./onnx.ts) and the packed integer weights
// (./packed.ts) are both made from this. Platform independent.
//
// Calibration is PTQ evaluation's (ssql/eval.ts `withSetting`): BN in eval mode, activation
// ranges the min/max over one calibration batch, weight ranges per output channel from the
// weights. Placement (docs/method.md#placement, ssql/models/resnet.ts): the stem conv has 8-bit weights and
// an 8-bit output activation; every block conv has the setting's weight bits; a block's inner
// activations (after BN+ReLU) and its output (after add+ReLU) have the setting's activation
// bits; a block's last conv and the 1x1 shortcut feed the add unquantized.
import { BatchNorm2d, Conv2d, Linear, Sequential } from '../../engine/index.ts';
import type { Module, Tensor } from '../../engine/index.ts';
import { parseSetting, withSetting } from '../eval/index.ts';
import type { BitSetting, QuantizeOptions } from '../eval/index.ts';
import { ActQuant } from '../models/quant.ts';
import type { ResNet } from '../models/resnet.ts';
import { quantizeActRange, quantizeWeight } from './quantize.ts';
import type { ActQuantization, WeightQuantization } from './quantize.ts';

export interface ExportConv {
  /** Module name in the backbone, e.g. 'layer2.0.conv1'. */
  name: string;
  weight: Float32Array;
  /** [out, in, kH, kW]. */
  shape: number[];
  stride: number;
  padding: number;
  /** Null at full precision. */
  quant: WeightQuantization | null;
}

export interface ExportBn {
  name: string;
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  eps: number;
}

export interface ExportAct {
  name: string;
  /** Null at full precision (or a range the kernels pass through). */
  quant: ActQuantization | null;
}

/** conv -> BN (-> ReLU -> activation quantizer). */
export interface ExportUnit {
  conv: ExportConv;
  bn: ExportBn;
  /** Null for a block's last unit and the shortcut: no ReLU, no quantizer (they feed the add). */
  act: ExportAct | null;
}

export interface ExportBlock {
  name: string;
  /** The main path: two units (basic block) or three (bottleneck). */
  path: ExportUnit[];
  downsample: ExportUnit | null;
  /** After add + ReLU. */
  out: ExportAct;
}

export interface ExportModel {
  setting: BitSetting;
  inChannels: number;
  stem: ExportUnit;
  blocks: ExportBlock[];
  featureDim: number;
  /** An FP linear classifier on the features, if exported. */
  head: { weight: Float32Array; bias: Float32Array | null; outFeatures: number } | null;
}

async function floats(t: Tensor | null, what: string): Promise<Float32Array> {
  if (!t) throw new Error(`export: ${what} is missing`);
  return Float32Array.from(await t.toArray());
}

async function captureConv(conv: Module, name: string, bits: number): Promise<ExportConv> {
  if (!(conv instanceof Conv2d)) throw new Error(`export: ${name} is a ${conv.typeName}, expected a Conv2d`);
  if (conv.bias) throw new Error(`export: ${name} has a bias; the ResNet's convs have none`);
  const weight = await floats(conv.weight, `${name}.weight`);
  const shape = [...conv.weight.shape];
  return { name, weight, shape, stride: conv.stride, padding: conv.padding, quant: bits ? quantizeWeight(weight, shape[0], bits) : null };
}

async function captureBn(bn: Module, name: string): Promise<ExportBn> {
  if (!(bn instanceof BatchNorm2d)) throw new Error(`export: ${name} is a ${bn.typeName}, expected a BatchNorm2d`);
  return {
    name, eps: bn.eps,
    gamma: await floats(bn.weight, `${name}.weight`), beta: await floats(bn.bias, `${name}.bias`),
    mean: await floats(bn.runningMean, `${name}.running_mean`), variance: await floats(bn.runningVar, `${name}.running_var`),
  };
}

async function captureAct(act: Module, name: string, setting: BitSetting): Promise<ExportAct> {
  if (!(act instanceof ActQuant)) throw new Error(`export: ${name} is a ${act.typeName}, expected an activation quantizer`);
  if (!setting.quantized) return { name, quant: null };
  const { min, max } = await act.observer.read();
  return { name, quant: quantizeActRange(min, max, act.ctx.actBits(act.role)) };
}

function child(m: Module, key: string, where: string): Module {
  const c = m.namedChildren().find(([n]) => n === key)?.[1];
  if (!c) throw new Error(`export: ${where} has no '${key}'`);
  return c;
}

/** Read the backbone (in its current quantization state) into an ExportModel. */
async function capture(encoder: ResNet, setting: BitSetting, head: Linear | null): Promise<ExportModel> {
  const ctx = encoder.ctx;
  const wbits = setting.quantized ? ctx.weightBits('w') : 0;
  const stemBits = setting.quantized ? ctx.weightBits('w8') : 0;
  const unit = async (m: Module, conv: string, bn: string, act: string | null, prefix: string, bits: number): Promise<ExportUnit> => ({
    conv: await captureConv(child(m, conv, prefix || 'backbone'), `${prefix}${conv}`, bits),
    bn: await captureBn(child(m, bn, prefix || 'backbone'), `${prefix}${bn}`),
    act: act ? await captureAct(child(m, act, prefix || 'backbone'), `${prefix}${act}`, setting) : null,
  });
  const stem = await unit(encoder, 'conv1', 'bn1', 'act1', '', stemBits);
  const blocks: ExportBlock[] = [];
  for (const [si, stage] of encoder.stages.entries()) {
    for (const [bi, block] of stage.namedChildren()) {
      const name = `layer${si + 1}.${bi}`;
      const p = `${name}.`;
      const bottleneck = block.namedChildren().some(([n]) => n === 'conv3');
      const path = bottleneck
        ? [await unit(block, 'conv1', 'bn1', 'act1', p, wbits), await unit(block, 'conv2', 'bn2', 'act2', p, wbits), await unit(block, 'conv3', 'bn3', null, p, wbits)]
        : [await unit(block, 'conv1', 'bn1', 'act1', p, wbits), await unit(block, 'conv2', 'bn2', null, p, wbits)];
      const ds = block.namedChildren().find(([n]) => n === 'downsample')?.[1];
      let downsample: ExportUnit | null = null;
      if (ds) {
        if (!(ds instanceof Sequential)) throw new Error(`export: ${p}downsample is a ${ds.typeName}, expected a Sequential`);
        downsample = await unit(ds, '0', '1', null, `${p}downsample.`, wbits);
      }
      blocks.push({ name, path, downsample, out: await captureAct(child(block, 'act_out', name), `${p}act_out`, setting) });
    }
  }
  let exportHead: ExportModel['head'] = null;
  if (head) {
    if (head.inFeatures !== encoder.featureDim) throw new RangeError(`export: the head takes ${head.inFeatures} features, the backbone gives ${encoder.featureDim}`);
    exportHead = { weight: await floats(head.weight, 'head weight'), bias: head.bias ? await floats(head.bias, 'head bias') : null, outFeatures: head.outFeatures };
  }
  return { setting, inChannels: encoder.config.inChannels, stem, blocks, featureDim: encoder.featureDim, head: exportHead };
}

export interface CaptureOptions extends QuantizeOptions {
  /** An FP linear classifier on the pooled features, exported after them. */
  head?: Linear;
}

/**
 * Calibrate `encoder` at `setting` exactly as PTQ evaluation does (`opts.calibration` is
 * required for a quantized setting) and capture it. The encoder's mode is restored after.
 */
export async function captureQuantizedModel(encoder: ResNet, setting: string | BitSetting, opts: CaptureOptions = {}): Promise<ExportModel> {
  const s = typeof setting === 'string' ? parseSetting(setting) : setting;
  if (s.quantized && !opts.calibration) throw new RangeError(`export at ${s.name}: calibration images are required (the activation ranges come from one calibration batch)`);
  return withSetting(encoder, s, opts, () => capture(encoder, s, opts.head ?? null));
}
