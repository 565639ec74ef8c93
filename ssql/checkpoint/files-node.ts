// Node only: checkpoint files are written to a temporary name, flushed to disk and renamed, so a
// crash, a power cut or a full disk never destroys the previous checkpoint; loading refuses a
// checkpoint holding non-finite values (ssql/checkpoint/finite.ts).
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { CheckpointFormatError } from '../format-error.ts';
import { assertFinite } from './finite.ts';
import { decodeSafetensors, encodeSafetensors } from './safetensors.ts';
import type { SafeTensor } from './safetensors.ts';

/** Flush a directory entry (the rename) where the platform allows opening directories. */
function fsyncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot open directories; the rename is still atomic there.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    const fd = openSync(tmp, 'w');
    try {
      for (let at = 0; at < bytes.byteLength;) at += writeSync(fd, bytes, at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* nothing to clean up */ }
    throw e;
  }
  fsyncDirectory(dirname(path));
}

export function saveSafetensors(path: string, tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** A checkpoint for evaluation or resuming: the file must be valid safetensors and every float
 * in it finite (CheckpointFormatError, naming the file and the tensor, otherwise). */
export function loadSafetensors(path: string): ReturnType<typeof decodeSafetensors> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CheckpointFormatError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file: path });
  }
  const checkpoint = decodeSafetensors(bytes, path);
  assertFinite(checkpoint.tensors, path);
  return checkpoint;
}
