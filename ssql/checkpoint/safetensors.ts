// The safetensors format (the ecosystem's standard for weights): an 8-byte little-endian
// header length, a JSON header mapping names to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" of string values), then the raw little-endian tensor bytes.
// Platform independent; Node's atomic file writing is in ssql/checkpoint/files-node.ts.

export type SafeDType = 'F32' | 'I32' | 'U32' | 'I64' | 'F64' | 'U8';

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: Uint8Array;
}

const WIDTH: Record<SafeDType, number> = { F32: 4, I32: 4, U32: 4, I64: 8, F64: 8, U8: 1 };

export class CheckpointFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointFormatError';
  }
}

export function encodeSafetensors(tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const names = Object.keys(tensors).sort();
  for (const name of names) {
    const t = tensors[name];
    const expected = t.shape.reduce((n, d) => n * d, 1) * WIDTH[t.dtype];
    if (t.data.byteLength !== expected) throw new RangeError(`safetensors: '${name}' has ${t.data.byteLength} bytes, shape [${t.shape.join(', ')}] ${t.dtype} needs ${expected}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned.
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    out.set(tensors[name].data, at);
    at += tensors[name].data.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array, source = 'checkpoint'): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new CheckpointFormatError(`${source}: ${bytes.length} bytes is too short for a safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > bytes.length - 8 || headerLen > 100_000_000) {
    throw new CheckpointFormatError(`${source}: header length ${headerLen} at offset 0 exceeds the file (${bytes.length} bytes): truncated or not safetensors`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointFormatError(`${source}: header (offset 8, ${headerLen} bytes) is not valid JSON: ${(e as Error).message}`);
  }
  const dataStart = 8 + headerLen;
  const tensors: Record<string, SafeTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (!e.dtype || !(e.dtype in WIDTH)) throw new CheckpointFormatError(`${source}: tensor '${name}' has unsupported dtype ${e.dtype}`);
    if (!Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) throw new CheckpointFormatError(`${source}: tensor '${name}' lacks shape or data_offsets`);
    const [begin, end] = e.data_offsets;
    const need = e.shape.reduce((n, d) => n * d, 1) * WIDTH[e.dtype as SafeDType];
    if (end - begin !== need) throw new CheckpointFormatError(`${source}: tensor '${name}' spans ${end - begin} bytes, shape [${e.shape.join(', ')}] ${e.dtype} needs ${need}`);
    if (dataStart + end > bytes.length) {
      throw new CheckpointFormatError(`${source}: tensor '${name}' ends at offset ${dataStart + end}, past the end of the file (${bytes.length} bytes): truncated`);
    }
    // A copy (Node Buffers slice as views into shared memory), aligned for typed-array views.
    tensors[name] = { dtype: e.dtype as SafeDType, shape: e.shape, data: new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end)) };
  }
  return { tensors, metadata };
}
