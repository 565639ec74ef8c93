// A checkpoint is only worth loading (for evaluation or to resume) if every floating-point value
// in it is finite: a run that diverged writes NaN weights that still evaluate to a plausible-
// looking accuracy, and resuming from them trains on in NaN. Platform independent.
import { CheckpointFormatError } from '../format-error.ts';
import type { SafeTensor } from './safetensors.ts';

export interface NonFinite {
  /** The tensor's name in the checkpoint. */
  name: string;
  /** How many of its values are NaN or infinite. */
  count: number;
  /** Flat index and value of the first one. */
  index: number;
  value: number;
}

function floats(t: SafeTensor): Float32Array | Float64Array | null {
  if (t.dtype !== 'F32' && t.dtype !== 'F64') return null;
  const width = t.dtype === 'F32' ? 4 : 8;
  // Typed-array views need an aligned offset; copy only when the bytes are not.
  const data = t.data.byteOffset % width === 0 ? t.data : new Uint8Array(t.data);
  const n = data.byteLength / width;
  return t.dtype === 'F32' ? new Float32Array(data.buffer, data.byteOffset, n) : new Float64Array(data.buffer, data.byteOffset, n);
}

/** Every floating-point tensor holding a NaN or an infinity (integer tensors are always finite). */
export function findNonFinite(tensors: Record<string, SafeTensor>): NonFinite[] {
  const found: NonFinite[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const v = floats(t);
    if (!v) continue;
    let count = 0;
    let index = -1;
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i])) {
        if (count === 0) index = i;
        count++;
      }
    }
    if (count > 0) found.push({ name, count, index, value: v[index] });
  }
  return found;
}

/** Throws a CheckpointFormatError naming the file and the first tensor (of how many) holding
 * non-finite values; returns the tensors unchanged otherwise. */
export function assertFinite(tensors: Record<string, SafeTensor>, file: string): Record<string, SafeTensor> {
  const bad = findNonFinite(tensors);
  if (bad.length === 0) return tensors;
  const [first] = bad;
  const t = tensors[first.name];
  const others = bad.length > 1 ? ` (and ${bad.length - 1} more tensors: ${bad.slice(1, 4).map((b) => `'${b.name}'`).join(', ')}${bad.length > 4 ? ', ...' : ''})` : '';
  throw new CheckpointFormatError(
    `${file}: tensor '${first.name}' ${t.dtype} [${t.shape.join(', ')}] holds ${first.count} non-finite values, the first ${first.value} at index ${first.index}${others}; ` +
    'the run that wrote it had diverged, so it cannot be evaluated or resumed',
    { file, field: first.name },
  );
}
