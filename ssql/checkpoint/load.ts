// Checkpoints into networks, whatever wrote them: ssql-webgpu's own (pretrain, finetune) or a
// PyTorch file imported in memory (./import.ts). Platform independent; ./read-node.ts reads the
// files.
//
// - `loadBackbone`: the ResNet backbone alone (no projector, no predictor), for evaluation,
//   export and fine-tuning. Every method's checkpoint has it under `encoder.*` (SimSiam, BYOL,
//   MoCo and their SSQL variants differ only in the heads and the momentum encoders), and so
//   does an import of any supported layout, heads or not.
// - `initFromCheckpoint` (`pretrain --init`): the backbone must be there; the projector and the
//   predictor are taken when the checkpoint has them whole with this run's shapes, and are
//   otherwise left as initialized (a torchvision or MoCo checkpoint has no SimSiam projector);
//   a momentum encoder restarts as a copy of the loaded online encoder.
import { CheckpointFormatError } from '../format-error.ts';
import type { PretrainNet } from '../methods/method.ts';
import { QuantContext } from '../models/quant.ts';
import { ResNet } from '../models/resnet.ts';
import type { ResNetConfig } from '../models/resnet.ts';
import { backboneConfig, loadInto } from '../train.ts';
import type { ModelName } from '../train.ts';
import type { Module } from '../../engine/index.ts';
import type { ImportReport } from './import.ts';
import type { Architecture } from './names.ts';
import type { SafeTensor } from './safetensors.ts';

/** A checkpoint's contents, read from safetensors or imported from a torch.save file. */
export interface CheckpointContents {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
  /** The file (or upload) name, for messages. */
  source: string;
  /** Set when the tensors were imported from a PyTorch file. */
  imported?: ImportReport;
}

const MODELS: readonly ModelName[] = ['tiny', 'small', 'resnet18', 'resnet34', 'resnet50'];

/** The training config in the metadata (ssql-webgpu's own and imported checkpoints have one). */
export function checkpointConfig(ck: CheckpointContents): Record<string, unknown> {
  const text = ck.metadata.config;
  if (text === undefined) {
    throw new CheckpointFormatError(`${ck.source}: not an ssql-webgpu checkpoint (no config in its metadata); a PyTorch .pth/.pth.tar file is read directly, or converted with 'ssql import'`, { file: ck.source, field: 'config' });
  }
  try {
    const config = JSON.parse(text) as unknown;
    if (config && typeof config === 'object' && !Array.isArray(config)) return config as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new CheckpointFormatError(`${ck.source}: the metadata's config is not a JSON object`, { file: ck.source, field: 'config' });
}

/** The backbone's structure: the `architecture` an import recorded, else the config's model
 * preset with the stem's input channels. */
export function checkpointBackbone(ck: CheckpointContents): ResNetConfig {
  if (ck.metadata.architecture !== undefined) {
    try {
      return (JSON.parse(ck.metadata.architecture) as Architecture).backbone;
    } catch {
      throw new CheckpointFormatError(`${ck.source}: the metadata's architecture is not JSON`, { file: ck.source, field: 'architecture' });
    }
  }
  const model = checkpointConfig(ck).model;
  if (typeof model !== 'string' || !MODELS.includes(model as ModelName)) {
    throw new CheckpointFormatError(`${ck.source}: the config names no known model (${JSON.stringify(model)}; known: ${MODELS.join(', ')})`, { file: ck.source, field: 'config.model' });
  }
  const stem = ck.tensors['encoder.conv1.weight'];
  if (!stem || stem.shape.length !== 4) throw new CheckpointFormatError(`${ck.source} lacks the stem 'encoder.conv1.weight' [out, in, 3, 3]`, { file: ck.source, field: 'encoder.conv1.weight' });
  return backboneConfig(model as ModelName, stem.shape[1]);
}

/** `tensors` under `prefix`, with the prefix removed. */
function under(tensors: Record<string, SafeTensor>, prefix: string): Record<string, SafeTensor> {
  const out: Record<string, SafeTensor> = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = t;
  return out;
}

/** Load every state tensor of `module` from `ck`'s `prefix`-named tensors; a missing one is an
 * error naming it with the prefix. */
function loadStrict(module: Module, ck: CheckpointContents, prefix: string): void {
  const sub = under(ck.tensors, prefix);
  for (const [name] of module.stateDict()) {
    if (!sub[name]) throw new CheckpointFormatError(`${ck.source} lacks '${prefix}${name}' (was it made with another model or width?)`, { file: ck.source, field: `${prefix}${name}` });
  }
  loadInto(module, sub, ck.source);
}

/** Draws nothing: the weights are overwritten by the checkpoint's. */
const constant = (): number => 0.5;

/** The checkpoint's backbone as a bare ResNet (its own quantization context, no head), in
 * train mode like a fresh module. Dispose with `disposeBackbone`. */
export function loadBackbone(ck: CheckpointContents): ResNet {
  const encoder = new ResNet(new QuantContext(), checkpointBackbone(ck), constant);
  try {
    loadStrict(encoder, ck, 'encoder.');
  } catch (e) {
    disposeBackbone(encoder);
    throw e;
  }
  return encoder;
}

export function disposeBackbone(encoder: ResNet): void {
  for (const t of encoder.stateDict().values()) t.dispose();
  encoder.ctx.dispose();
}

export interface InitReport {
  /** Backbone tensors loaded. */
  backbone: number;
  /** Each head: loaded from the checkpoint, or left as initialized and why. */
  heads: { name: 'projector' | 'predictor'; loaded: boolean; reason?: string }[];
  /** A momentum encoder restarted as a copy of the loaded online encoder. */
  momentumRestarted: boolean;
}

/** Why `module` cannot be loaded whole from `prefix`-named tensors, or null when it can. */
function headMismatch(module: Module, ck: CheckpointContents, prefix: string): string | null {
  const sub = under(ck.tensors, prefix);
  const state = [...module.stateDict()];
  const present = state.filter(([name]) => sub[name]);
  if (present.length === 0) return 'not in the checkpoint';
  for (const [name, t] of state) {
    const s = sub[name];
    if (!s) return `'${prefix}${name}' is missing (${present.length} of ${state.length} tensors present)`;
    if (s.shape.join() !== t.shape.join()) return `'${prefix}${name}' is [${s.shape.join(', ')}], this run's is [${t.shape.join(', ')}]`;
  }
  return null;
}

/** Initialize a fresh pretraining network from a checkpoint (see the module comment). */
export function initFromCheckpoint(net: PretrainNet, ck: CheckpointContents): InitReport {
  const encoder = net.encoder;
  const backbone = checkpointBackbone(ck);
  const want = encoder.config;
  if (backbone.block !== want.block || backbone.layers.join() !== want.layers.join() || backbone.widths.join() !== want.widths.join() || backbone.inChannels !== want.inChannels) {
    throw new CheckpointFormatError(`${ck.source}: its backbone (${backbone.block} blocks ${backbone.layers.join('/')}, widths ${backbone.widths.join('/')}, ${backbone.inChannels} input channels) is not this run's (${want.block} blocks ${want.layers.join('/')}, widths ${want.widths.join('/')}, ${want.inChannels} input channels): choose the matching --model`, { file: ck.source });
  }
  let count = 0;
  for (const [name, child] of encoder.namedChildren()) {
    if (name === 'fc') continue;
    loadStrict(child, ck, `encoder.${name}.`);
    count += child.stateDict().size;
  }
  const heads: InitReport['heads'] = [];
  const groups: ['projector' | 'predictor', Module | null, string][] = [['projector', encoder.fc, 'encoder.fc.'], ['predictor', net.predictor, 'predictor.']];
  for (const [name, module, prefix] of groups) {
    if (!module || module.stateDict().size === 0) continue;
    const why = headMismatch(module, ck, prefix);
    if (why === null) loadInto(module, under(ck.tensors, prefix), ck.source);
    heads.push(why === null ? { name, loaded: true } : { name, loaded: false, reason: why });
  }
  const restart = net.restartMomentumEncoder;
  if (restart) restart.call(net);
  return { backbone: count, heads, momentumRestarted: restart !== undefined };
}

/** `initFromCheckpoint`'s report in one line. */
export function formatInitReport(r: InitReport, source: string): string {
  const heads = r.heads.map((h) => (h.loaded ? `${h.name} loaded` : `${h.name} initialized fresh (${h.reason})`));
  return `initialized from ${source}: backbone (${r.backbone} tensors)${heads.length ? `, ${heads.join(', ')}` : ''}${r.momentumRestarted ? '; momentum encoder restarted as a copy' : ''}`;
}
