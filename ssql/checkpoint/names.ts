// Key names of other codebases' ResNet/SimSiam state dicts mapped to ours (SimSiamNet:
// `encoder.` + torchvision's ResNet names, the projector as `encoder.fc.*`, `predictor.*`),
// the architecture read off the tensors' shapes, and the model's expected names and shapes,
// so an import can say exactly what it used, what it left unused and what is missing.
// Platform independent; no GPU needed.
//
// Layouts recognized (a leading `module.`, DistributedDataParallel's, is dropped first):
//   official SSQL (megvii-research/SSQL-ECCV2022)  encoder_q.model.<resnet>; its QuantModel
//       attaches the BN after a conv or linear to that layer as `bn_function`:
//       conv1.bn_function -> bn1, layerI.J.convK.bn_function -> layerI.J.bnK,
//       layerI.J.downsample.weight -> downsample.0.weight, downsample.bn_function -> downsample.1,
//       fc.N.bn_function -> fc.(N+1) (the projector), and keeps quantizer observer state
//       (weight_quantizer / output_quantizer), unused here: ranges are recalibrated.
//       encoder_k.model.* (SSQL on MoCo's key encoder) is unused.
//   official SimSiam (facebookresearch/simsiam)    encoder.<resnet>, predictor.*
//   MoCo v1/v2 (facebookresearch/moco)             encoder_q.<resnet>; encoder_k.*, queue* unused
//   MoCo v3                                        base_encoder.<resnet>; momentum_encoder.* unused
//   torchvision ResNet                             <resnet> with no prefix
//   ssql-webgpu's own names are SimSiam's          encoder.*, predictor.* (kept as they are)
// A projector or predictor of another structure (MoCo's 2-layer MLP head, torchvision's
// classifier `fc.weight`) does not match ours by shape and is reported unused.
import type { SafeTensor } from './safetensors.ts';
import { CheckpointFormatError } from '../format-error.ts';
import type { ResNetConfig } from '../models/resnet.ts';

export type SourceLayout = 'ssql' | 'simsiam' | 'moco' | 'mocov3' | 'torchvision';

export interface UnusedKey {
  key: string;
  reason: string;
}

export interface NameMapping {
  /** Tensors under our names, in the source's order. */
  tensors: Record<string, SafeTensor>;
  /** Our name -> the source key it came from. */
  sources: Record<string, string>;
  /** Source keys that have no counterpart in our model, with the reason. */
  unused: UnusedKey[];
  /** The layout of the backbone keys (the most frequent one, if several). */
  layout: SourceLayout | 'unknown';
}

const RESNET_TOP = /^(conv1|bn1|layer\d+|fc)\./;
const QUANTIZER = /(^|\.)(weight_quantizer|output_quantizer|input_quantizer|observer)\./;

/** The reference code's `bn_function` attachments back to torchvision's module names. */
function fromBnFunction(name: string): string {
  return name
    .replace(/^conv1\.bn_function\./, 'bn1.')
    .replace(/^(layer\d+\.\d+)\.conv(\d)\.bn_function\./, '$1.bn$2.')
    .replace(/^(layer\d+\.\d+)\.downsample\.weight$/, '$1.downsample.0.weight')
    .replace(/^(layer\d+\.\d+)\.downsample\.bn_function\./, '$1.downsample.1.')
    .replace(/^fc\.(\d+)\.bn_function\./, (_, n: string) => `fc.${Number(n) + 1}.`);
}

interface Rule {
  prefix: string;
  layout: SourceLayout;
  /** Where the rest goes: 'backbone' (encoder.), 'predictor', or a reason it is unused. */
  target: 'backbone' | 'predictor' | { unused: string };
}

// Longest prefixes first: 'encoder_q.model.' before 'encoder_q.'.
const RULES: Rule[] = [
  { prefix: 'encoder_q.model.', layout: 'ssql', target: 'backbone' },
  { prefix: 'encoder_k.model.', layout: 'ssql', target: { unused: 'the key (momentum) encoder of SSQL on MoCo' } },
  { prefix: 'encoder_q.', layout: 'moco', target: 'backbone' },
  { prefix: 'encoder_k.', layout: 'moco', target: { unused: "MoCo's key (momentum) encoder" } },
  { prefix: 'base_encoder.', layout: 'mocov3', target: 'backbone' },
  { prefix: 'momentum_encoder.', layout: 'mocov3', target: { unused: "MoCo v3's momentum encoder" } },
  { prefix: 'encoder.', layout: 'simsiam', target: 'backbone' },
  { prefix: 'predictor.', layout: 'simsiam', target: 'predictor' },
  { prefix: 'queue', layout: 'moco', target: { unused: "MoCo's queue of negatives" } },
];

/** Map a source state dict's keys to ours (see the module comment). Shapes are not checked
 * here; `checkAgainst` does that. */
export function mapStateDictNames(src: Record<string, SafeTensor>): NameMapping {
  const tensors: Record<string, SafeTensor> = {};
  const sources: Record<string, string> = {};
  const unused: UnusedKey[] = [];
  const layouts = new Map<SourceLayout, number>();
  for (const [key, t] of Object.entries(src)) {
    const k = key.replace(/^(module\.)+/, '');
    const rule = RULES.find((r) => k.startsWith(r.prefix));
    let target: string;
    let layout: SourceLayout;
    if (rule && typeof rule.target === 'object') {
      unused.push({ key, reason: rule.target.unused });
      continue;
    }
    if (rule) {
      const rest = k.slice(rule.prefix.length);
      layout = rule.layout;
      if (QUANTIZER.test(rest)) {
        unused.push({ key, reason: 'quantizer state of the reference code (ranges are recalibrated here)' });
        continue;
      }
      target = rule.target === 'predictor' ? `predictor.${rest}` : `encoder.${fromBnFunction(rest)}`;
    } else if (RESNET_TOP.test(k)) {
      layout = 'torchvision';
      if (QUANTIZER.test(k)) {
        unused.push({ key, reason: 'quantizer state of the reference code (ranges are recalibrated here)' });
        continue;
      }
      target = `encoder.${fromBnFunction(k)}`;
    } else {
      unused.push({ key, reason: 'not a ResNet, projector or predictor tensor' });
      continue;
    }
    if (rule?.target === 'backbone' || layout === 'torchvision') layouts.set(layout, (layouts.get(layout) ?? 0) + 1);
    if (target in tensors) {
      throw new CheckpointFormatError(`checkpoint keys '${sources[target]}' and '${key}' both map to '${target}': a checkpoint with two models in it? Keep one`);
    }
    tensors[target] = t;
    sources[target] = key;
  }
  let layout: NameMapping['layout'] = 'unknown';
  let best = 0;
  for (const [l, n] of layouts) if (n > best) [layout, best] = [l, n];
  return { tensors, sources, unused, layout };
}

export interface Architecture {
  backbone: ResNetConfig;
  /** The SimSiam projector's width, when a projector of our structure is present. */
  projDim?: number;
  /** The predictor's bottleneck width, when a predictor of our structure is present. */
  predHidden?: number;
}

function shapeOf(tensors: Record<string, SafeTensor>, name: string): number[] | undefined {
  return tensors[name]?.shape;
}

/** The ResNet (and head widths) that our-named tensors describe, read off their shapes. */
export function inferArchitecture(tensors: Record<string, SafeTensor>, source = 'checkpoint'): Architecture {
  const stem = shapeOf(tensors, 'encoder.conv1.weight');
  if (!stem) throw new CheckpointFormatError(`${source}: no stem convolution (conv1.weight under any known prefix): not a ResNet checkpoint`);
  if (stem.length !== 4) throw new CheckpointFormatError(`${source}: the stem conv1.weight has shape [${stem.join(', ')}], not [out, in, kH, kW]`);
  if (stem[2] !== 3 || stem[3] !== 3) {
    throw new CheckpointFormatError(`${source}: the stem convolution is ${stem[2]}x${stem[3]} (shape [${stem.join(', ')}]): an ImageNet-style ResNet (7x7 stride-2 stem and max-pool); ssql-webgpu's ResNets are the CIFAR variant (3x3 stride-1 stem, no max-pool), so its weights cannot be used as they are`);
  }
  const bottleneck = shapeOf(tensors, 'encoder.layer1.0.conv3.weight') !== undefined;
  const layers: number[] = [];
  const widths: number[] = [];
  for (let i = 1; shapeOf(tensors, `encoder.layer${i}.0.conv1.weight`); i++) {
    let n = 0;
    while (shapeOf(tensors, `encoder.layer${i}.${n}.conv1.weight`)) n++;
    layers.push(n);
    widths.push(shapeOf(tensors, `encoder.layer${i}.0.conv1.weight`)![0]);
  }
  if (layers.length === 0) throw new CheckpointFormatError(`${source}: no residual stages (layer1.0.conv1.weight): not a ResNet checkpoint`);
  if (stem[0] !== widths[0] && !bottleneck) {
    throw new CheckpointFormatError(`${source}: the stem has ${stem[0]} channels and the first stage ${widths[0]}; ssql-webgpu's ResNets use one width for both`);
  }
  const arch: Architecture = { backbone: { block: bottleneck ? 'bottleneck' : 'basic', layers, widths, inChannels: stem[1] } };
  const fc0 = shapeOf(tensors, 'encoder.fc.0.weight');
  if (fc0 && fc0.length === 2 && shapeOf(tensors, 'encoder.fc.7.running_mean')) arch.projDim = fc0[0];
  const pred0 = shapeOf(tensors, 'predictor.0.weight');
  if (pred0 && pred0.length === 2 && shapeOf(tensors, 'predictor.3.weight')) arch.predHidden = pred0[0];
  return arch;
}

export interface ExpectedTensor {
  shape: number[];
  dtype: 'F32' | 'I64';
}

function addBn(into: Map<string, ExpectedTensor>, prefix: string, n: number, affine = true): void {
  if (affine) {
    into.set(`${prefix}.weight`, { shape: [n], dtype: 'F32' });
    into.set(`${prefix}.bias`, { shape: [n], dtype: 'F32' });
  }
  into.set(`${prefix}.running_mean`, { shape: [n], dtype: 'F32' });
  into.set(`${prefix}.running_var`, { shape: [n], dtype: 'F32' });
  into.set(`${prefix}.num_batches_tracked`, { shape: [], dtype: 'I64' });
}

function addConv(into: Map<string, ExpectedTensor>, name: string, out: number, inC: number, k: number): void {
  into.set(`${name}.weight`, { shape: [out, inC, k, k], dtype: 'F32' });
}

/**
 * The state dict of `SimSiamNet` (ssql/models/resnet.ts) for an architecture: names, shapes
 * and checkpoint dtypes; the projector and predictor only where `arch` gives their widths.
 * tests/ssql/pth.test.ts checks it against the real module's stateDict().
 */
export function expectedState(arch: Architecture): Map<string, ExpectedTensor> {
  const m = new Map<string, ExpectedTensor>();
  const { block, layers, widths, inChannels } = arch.backbone;
  const expansion = block === 'bottleneck' ? 4 : 1;
  addConv(m, 'encoder.conv1', widths[0], inChannels, 3);
  addBn(m, 'encoder.bn1', widths[0]);
  let inPlanes = widths[0];
  widths.forEach((planes, i) => {
    for (let b = 0; b < layers[i]; b++) {
      const p = `encoder.layer${i + 1}.${b}`;
      const stride = b === 0 && i > 0 ? 2 : 1;
      const out = planes * expansion;
      if (block === 'basic') {
        addConv(m, `${p}.conv1`, planes, inPlanes, 3);
        addBn(m, `${p}.bn1`, planes);
        addConv(m, `${p}.conv2`, planes, planes, 3);
        addBn(m, `${p}.bn2`, planes);
      } else {
        addConv(m, `${p}.conv1`, planes, inPlanes, 1);
        addBn(m, `${p}.bn1`, planes);
        addConv(m, `${p}.conv2`, planes, planes, 3);
        addBn(m, `${p}.bn2`, planes);
        addConv(m, `${p}.conv3`, out, planes, 1);
        addBn(m, `${p}.bn3`, out);
      }
      if (stride !== 1 || inPlanes !== out) {
        addConv(m, `${p}.downsample.0`, out, inPlanes, 1);
        addBn(m, `${p}.downsample.1`, out);
      }
      inPlanes = out;
    }
  });
  if (arch.projDim !== undefined) {
    const d = arch.projDim;
    m.set('encoder.fc.0.weight', { shape: [d, inPlanes], dtype: 'F32' });
    addBn(m, 'encoder.fc.1', d);
    m.set('encoder.fc.3.weight', { shape: [d, d], dtype: 'F32' });
    addBn(m, 'encoder.fc.4', d);
    m.set('encoder.fc.6.weight', { shape: [d, d], dtype: 'F32' });
    m.set('encoder.fc.6.bias', { shape: [d], dtype: 'F32' });
    addBn(m, 'encoder.fc.7', d, false);
    if (arch.predHidden !== undefined) {
      const h = arch.predHidden;
      m.set('predictor.0.weight', { shape: [h, d], dtype: 'F32' });
      addBn(m, 'predictor.1', h);
      m.set('predictor.3.weight', { shape: [d, h], dtype: 'F32' });
      m.set('predictor.3.bias', { shape: [d], dtype: 'F32' });
    }
  }
  return m;
}

export interface CheckedMapping {
  /** The mapped tensors that the model has, with the right shape (dtype converted if needed). */
  tensors: Record<string, SafeTensor>;
  /** Source keys not used: the mapping's, plus names our model lacks and shape mismatches. */
  unused: UnusedKey[];
  /** Our names that nothing in the source provides. */
  missing: string[];
}

/** Keep what fits `expected`; report the rest as unused, and what is absent as missing. */
export function checkAgainst(mapping: NameMapping, expected: ReadonlyMap<string, ExpectedTensor>): CheckedMapping {
  const tensors: Record<string, SafeTensor> = {};
  const unused = [...mapping.unused];
  for (const [name, t] of Object.entries(mapping.tensors)) {
    const want = expected.get(name);
    const key = mapping.sources[name];
    if (!want) {
      unused.push({ key, reason: `maps to '${name}', which ssql-webgpu's model does not have (a head of another structure?)` });
      continue;
    }
    if (t.shape.length !== want.shape.length || t.shape.some((d, i) => d !== want.shape[i])) {
      unused.push({ key, reason: `shape [${t.shape.join(', ')}], where '${name}' has [${want.shape.join(', ')}]` });
      continue;
    }
    const converted = convertDType(t, want.dtype);
    if (!converted) {
      unused.push({ key, reason: `dtype ${t.dtype}, where '${name}' needs ${want.dtype}` });
      continue;
    }
    tensors[name] = converted;
  }
  const missing = [...expected.keys()].filter((k) => !(k in tensors));
  return { tensors, unused, missing };
}

function convertDType(t: SafeTensor, to: 'F32' | 'I64'): SafeTensor | null {
  if (t.dtype === to) return t;
  // BN counters saved as int32 (or by tools that widen everything to float) become int64.
  if (to === 'I64' && (t.dtype === 'I32' || t.dtype === 'F32')) {
    const n = t.data.byteLength / 4;
    const src = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const out = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      const v = t.dtype === 'I32' ? src.getInt32(i * 4, true) : src.getFloat32(i * 4, true);
      if (!Number.isInteger(v)) return null;
      out[i] = BigInt(v);
    }
    return { dtype: 'I64', shape: t.shape, data: new Uint8Array(out.buffer) };
  }
  return null;
}
