// Node only: checkpoint files are written to a temporary name and renamed, so a crash or a
// full disk never destroys the previous checkpoint.
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { decodeSafetensors, encodeSafetensors } from './safetensors.ts';
import type { SafeTensor } from './safetensors.ts';

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* nothing to clean up */ }
    throw e;
  }
}

export function saveSafetensors(path: string, tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export function loadSafetensors(path: string): ReturnType<typeof decodeSafetensors> {
  return decodeSafetensors(readFileSync(path), path);
}
