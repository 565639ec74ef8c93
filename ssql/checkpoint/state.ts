// What a training checkpoint's metadata says about the run that wrote it: the training config,
// the position (epoch, step), the random generators' states and the dataset's image shape; and
// which differences a resumed run may have from it. Platform independent (the CLI and the demo).
// Every reader names the file and the metadata field it could not use (CheckpointFormatError).
import { CheckpointFormatError } from '../format-error.ts';
import type { TrainConfig } from '../train.ts';

export const CHECKPOINT_FORMAT = 'ssql-webgpu-checkpoint-1';

/** The training images' shape, stored so evaluation and resuming can check their data. */
export interface DatasetShape {
  channels: number;
  height: number;
  width: number;
}

export interface CheckpointPosition {
  /** Completed epochs, steps into the current one, and steps taken in all. */
  epoch: number;
  stepInEpoch: number;
  globalStep: number;
}

/** Each a generator's four state words: augmentation, bit sampling, the current epoch's order. */
export interface RngStates {
  aug: number[];
  bits: number[];
  order: number[];
}

function fail(file: string, field: string, message: string): never {
  throw new CheckpointFormatError(`${file}: metadata '${field}' ${message}`, { file, field: `__metadata__.${field}` });
}

function parseJson(metadata: Record<string, string>, field: string, file: string): unknown {
  const text = metadata[field];
  if (text === undefined) fail(file, field, 'is missing (not a checkpoint written by ssql pretrain, or written by an older version)');
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(file, field, `is not valid JSON (${(e as Error).message})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The training config the checkpoint was made with. */
export function readConfig(metadata: Record<string, string>, file: string): TrainConfig {
  const c = parseJson(metadata, 'config', file);
  if (!isObject(c)) fail(file, 'config', 'is not a JSON object');
  for (const key of ['method', 'model'] as const) {
    if (typeof c[key] !== 'string') fail(file, 'config', `has no string '${key}'`);
  }
  for (const key of ['projDim', 'predHidden', 'batchSize', 'epochs', 'seed', 'subset'] as const) {
    if (!isCount(c[key])) fail(file, 'config', `'${key}' is ${JSON.stringify(c[key])}, not a non-negative integer`);
  }
  for (const key of ['wbits', 'abits'] as const) {
    const r = c[key];
    if (!Array.isArray(r) || r.length !== 2 || !r.every(isCount)) fail(file, 'config', `'${key}' is ${JSON.stringify(r)}, not [low, high]`);
  }
  return c as unknown as TrainConfig;
}

/** Where training stopped. */
export function readPosition(metadata: Record<string, string>, file: string): CheckpointPosition {
  const read = (field: string): number => {
    const text = metadata[field];
    if (text === undefined) fail(file, field, 'is missing');
    const v = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(v)) fail(file, field, `is '${text}', not a non-negative integer`);
    return v;
  };
  return { epoch: read('epoch'), stepInEpoch: read('step_in_epoch'), globalStep: read('global_step') };
}

/** The random generators' states (to continue the same sequences). */
export function readRngStates(metadata: Record<string, string>, file: string): RngStates {
  const r = parseJson(metadata, 'rng', file);
  if (!isObject(r)) fail(file, 'rng', 'is not a JSON object');
  for (const key of ['aug', 'bits', 'order'] as const) {
    const s = r[key];
    if (!Array.isArray(s) || s.length !== 4 || !s.every((v) => isCount(v) && v <= 0xffffffff) || s.every((v) => v === 0)) {
      fail(file, 'rng', `'${key}' is ${JSON.stringify(s)}, not 4 u32 state words (not all zero)`);
    }
  }
  return r as unknown as RngStates;
}

/** The training images' shape, or null for checkpoints written before it was stored. */
export function readDatasetShape(metadata: Record<string, string>, file: string): DatasetShape | null {
  if (metadata.dataset === undefined) return null;
  const d = parseJson(metadata, 'dataset', file);
  if (!isObject(d) || ![d.channels, d.height, d.width].every((v) => isCount(v) && v > 0)) {
    fail(file, 'dataset', `is ${JSON.stringify(d)}, not {channels, height, width} of positive integers`);
  }
  return { channels: d.channels as number, height: d.height as number, width: d.width as number };
}

export function shapeText(s: DatasetShape): string {
  return `${s.channels}x${s.height}x${s.width}`;
}

/** Config fields a resumed run must share with its checkpoint, with their command-line flags. */
const FIXED_ON_RESUME: readonly [keyof TrainConfig, string][] = [
  ['method', '--method'], ['model', '--model'], ['data', '--data'], ['projDim', '--proj-dim'], ['predHidden', '--pred-hidden'],
  ['batchSize', '--batch'], ['seed', '--seed'], ['subset', '--subset'], ['cropSize', '--crop'], ['wbits', '--wbits'], ['abits', '--abits'],
];

/** Fields a resumed run may change (the run continues with the new value; noted on resume). */
const CHANGEABLE_ON_RESUME: readonly [keyof TrainConfig, string][] = [
  ['lr', '--lr'], ['weightDecay', '--weight-decay'], ['momentum', '--momentum'], ['epochs', '--epochs'],
];

function show(key: keyof TrainConfig, v: unknown): string {
  if (key === 'wbits' || key === 'abits') return Array.isArray(v) ? v.join('-') : String(v);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Unset optional fields compare as their defaults (older checkpoints lack `cropSize`). */
function normalized(key: keyof TrainConfig, v: unknown): string {
  if (key === 'cropSize') return String(v ?? 0);
  return JSON.stringify(v);
}

/**
 * What stops `now` from resuming `saved` (one message per field, naming the flag; empty when it
 * can resume), and what it changes that is allowed (notes). `--epochs` may grow (the cosine
 * schedule is recomputed for the new total), never shrink. A `data` unknown on either side
 * (the demo) is not compared; the image shape is checked by the trainer.
 */
export function resumeDifferences(saved: TrainConfig, now: TrainConfig): { refusals: string[]; notes: string[] } {
  const refusals: string[] = [];
  const notes: string[] = [];
  for (const [key, flag] of FIXED_ON_RESUME) {
    if (key === 'data' && (saved.data === undefined || now.data === undefined)) continue;
    if (normalized(key, saved[key]) !== normalized(key, now[key])) {
      refusals.push(`${flag}: the checkpoint was made with ${flag} ${show(key, saved[key])}, this run has ${show(key, now[key])} (${key})`);
    }
  }
  // Checkpoints from before --weight-grad existed were trained with plain STE and keep it.
  if (saved.weightGrad === undefined) {
    notes.push('--weight-grad ste: the checkpoint predates the option, so it was trained with plain STE, and the resumed run keeps that (the projector\'s last bias is frozen from here on)');
  } else if (saved.weightGrad !== now.weightGrad) {
    refusals.push(`--weight-grad: the checkpoint was made with --weight-grad ${saved.weightGrad}, this run has ${now.weightGrad} (weightGrad)`);
  }
  for (const [key, flag] of CHANGEABLE_ON_RESUME) {
    if (saved[key] === undefined || normalized(key, saved[key]) === normalized(key, now[key])) continue;
    if (key === 'epochs' && now.epochs < saved.epochs) {
      refusals.push(`--epochs: the checkpoint's run was set for ${saved.epochs} epochs, this run has ${now.epochs}; a resumed run may add epochs, not remove them`);
    } else {
      notes.push(`${flag} ${show(key, now[key])} (the checkpoint was made with ${show(key, saved[key])})`);
    }
  }
  return { refusals, notes };
}
