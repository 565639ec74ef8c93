// Node only: what the `ssql` commands share (ssql/cli.ts and ssql/commands/*): a device for the
// length of a command, and checkpoints opened with a report of what a PyTorch import did.
import { existsSync } from 'node:fs';
import { initNodeDevice, startNodeTuning } from '../engine/device-node.ts';
import type { Engine } from '../engine/index.ts';
import { UsageError } from './cli-args.ts';
import { formatImportReport } from './checkpoint/import.ts';
import { loadBackbone } from './checkpoint/load.ts';
import type { CheckpointContents } from './checkpoint/load.ts';
import { readCheckpoint } from './checkpoint/read-node.ts';
import type { ResNet } from './models/resnet.ts';

/** A device for the length of a command, with kernel tuning (engine/tuning-node.ts: saved
 * choices loaded, new shapes measured, saved at the end; $SSQL_TUNING=off: the rules only). */
export async function withDevice(fn: (e: Engine) => Promise<void>): Promise<void> {
  const e = await initNodeDevice();
  const tuning = startNodeTuning();
  try {
    await fn(e);
  } finally {
    tuning.save();
    e.destroy();
  }
}

/** Read a checkpoint (safetensors, or a PyTorch file imported in memory: its import report goes
 * to stderr unless `quiet`). */
export function openCheckpoint(path: string, quiet = false): CheckpointContents {
  if (!existsSync(path)) throw new UsageError(`checkpoint not found: ${path}`);
  const ck = readCheckpoint(path);
  if (ck.imported && !quiet) process.stderr.write(`${formatImportReport(ck.imported)}\n`);
  return ck;
}

/** A checkpoint's backbone (any method's, or an import's) with its weights. */
export function loadNet(path: string, quiet = false): { encoder: ResNet; checkpoint: CheckpointContents } {
  const checkpoint = openCheckpoint(path, quiet);
  return { encoder: loadBackbone(checkpoint), checkpoint };
}
