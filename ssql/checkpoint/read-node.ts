// Node only: read a checkpoint file for eval, export, fine-tuning or `pretrain --init`: an
// ssql-webgpu safetensors file, or a PyTorch torch.save file (.pth, .pth.tar, .pt, or any zip
// archive) imported in memory exactly as `ssql import` converts it. Either way every float must
// be finite.
import { readFileSync } from 'node:fs';
import { CheckpointFormatError } from '../format-error.ts';
import { assertFinite } from './finite.ts';
import { importTorchCheckpoint } from './import.ts';
import type { CheckpointContents } from './load.ts';
import { decodeSafetensors } from './safetensors.ts';

const TORCH_NAME = /\.(pth|pt|tar)$/i;

/** True for a file name or contents that torch.save wrote (a zip archive). */
export function isTorchCheckpoint(path: string, bytes: Uint8Array): boolean {
  return TORCH_NAME.test(path) || (bytes.length >= 2 && bytes[0] === 0x50 && bytes[1] === 0x4b);
}

export function readCheckpoint(path: string): CheckpointContents {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CheckpointFormatError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file: path });
  }
  if (isTorchCheckpoint(path, bytes)) {
    const { tensors, metadata, report } = importTorchCheckpoint(bytes, path);
    assertFinite(tensors, path);
    return { tensors, metadata, source: path, imported: report };
  }
  const { tensors, metadata } = decodeSafetensors(bytes, path);
  assertFinite(tensors, path);
  return { tensors, metadata, source: path };
}
