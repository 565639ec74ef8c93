// The safetensors format (the ecosystem's standard for weights): an 8-byte little-endian
// header length, a JSON header mapping names to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" of string values), then the raw little-endian tensor bytes.
// Platform independent; Node's atomic file writing is in ssql/checkpoint/files-node.ts.
//
// Decoding trusts nothing in the file: the header length, the JSON, every entry's dtype, shape
// and offsets are checked, tensors may neither overlap nor leave bytes unaccounted for (as the
// format's reference implementation requires), and every failure is a CheckpointFormatError
// naming the file and the tensor or field.
import { CheckpointFormatError } from '../format-error.ts';

export type SafeDType = 'F32' | 'I32' | 'U32' | 'I64' | 'F64' | 'U8';

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: Uint8Array;
}

const WIDTH: Record<SafeDType, number> = { F32: 4, I32: 4, U32: 4, I64: 8, F64: 8, U8: 1 };

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


/** Largest header accepted (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

function fail(source: string, message: string, field?: string): never {
  throw new CheckpointFormatError(`${source}: ${message}`, { file: source, field });
}

/** What a JSON value is, for messages ("null", "an array", "a string" ...). */
function kindOf(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const t = typeof v;
  return t === 'object' ? 'an object' : `a ${t}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An own property even for the name `__proto__` (JSON.parse makes such keys own properties). */
function setOwn<T>(o: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

interface Span {
  name: string;
  dtype: SafeDType;
  shape: number[];
  begin: number;
  end: number;
}

function checkEntry(source: string, name: string, entry: unknown, dataLength: number, dataStart: number): Span {
  const what = `tensor '${name}'`;
  if (!isObject(entry)) fail(source, `${what}: header entry is ${kindOf(entry)}, not {dtype, shape, data_offsets}`, name);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') fail(source, `${what}: dtype is ${kindOf(dtype)}, not a string`, `${name}.dtype`);
  if (!Object.hasOwn(WIDTH, dtype)) fail(source, `${what}: dtype '${dtype}' is not one this reader supports (${Object.keys(WIDTH).join(', ')})`, `${name}.dtype`);
  if (!Array.isArray(shape)) fail(source, `${what}: shape is ${kindOf(shape)}, not an array`, `${name}.shape`);
  shape.forEach((d: unknown, i) => {
    if (!isCount(d)) fail(source, `${what}: shape [${shape.map((x) => JSON.stringify(x)).join(', ')}] has ${JSON.stringify(d)} at axis ${i}, not a non-negative integer`, `${name}.shape`);
  });
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    fail(source, `${what}: data_offsets is ${Array.isArray(offsets) ? `an array of ${offsets.length}` : kindOf(offsets)}, not [begin, end]`, `${name}.data_offsets`);
  }
  const [begin, end] = offsets as unknown[];
  if (!isCount(begin) || !isCount(end) || begin > end) {
    fail(source, `${what}: data_offsets [${JSON.stringify(begin)}, ${JSON.stringify(end)}] are not integers with 0 <= begin <= end`, `${name}.data_offsets`);
  }
  if (end > dataLength) {
    fail(source, `${what} ends at offset ${dataStart + end}, past the end of the file (${dataStart + dataLength} bytes): truncated`, `${name}.data_offsets`);
  }
  const dims = shape as number[];
  const need = dims.reduce((n, d) => n * d, 1) * WIDTH[dtype as SafeDType];
  if (end - begin !== need) fail(source, `${what} spans ${end - begin} bytes, shape [${dims.join(', ')}] ${dtype} needs ${need}`, `${name}.data_offsets`);
  return { name, dtype: dtype as SafeDType, shape: dims, begin, end };
}

/** Tensors must tile the data section: no overlap, no gap, nothing after the last one. */
function checkTiling(source: string, spans: Span[], dataLength: number, dataStart: number): void {
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let previous: Span | null = null;
  for (const s of sorted) {
    if (s.begin < at) {
      fail(source, `tensor '${s.name}' (data bytes ${s.begin}..${s.end}) overlaps '${previous!.name}' (${previous!.begin}..${previous!.end})`, `${s.name}.data_offsets`);
    }
    if (s.begin > at) {
      fail(source, `data bytes ${at}..${s.begin} belong to no tensor (before '${s.name}'): corrupt header`, `${s.name}.data_offsets`);
    }
    at = s.end;
    previous = s;
  }
  if (at !== dataLength) {
    fail(source, `${dataLength - at} bytes after the last tensor's data (file offset ${dataStart + at}) belong to no tensor: corrupt header or a longer file`, 'data');
  }
}

export function decodeSafetensors(bytes: Uint8Array, source = 'checkpoint'): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) fail(source, `${bytes.length} bytes is too short for a safetensors file (it starts with an 8-byte header length)`, 'header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(bytes.length - 8)) {
    fail(source, `header length ${declared} at offset 0 exceeds the file (${bytes.length} bytes): truncated or not safetensors`, 'header length');
  }
  if (declared > BigInt(MAX_HEADER_BYTES)) fail(source, `header length ${declared} at offset 0 is over the ${MAX_HEADER_BYTES}-byte limit: not safetensors`, 'header length');
  const headerLength = Number(declared);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail(source, `header (offset 8, ${headerLength} bytes) is not valid UTF-8`, 'header');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(source, `header (offset 8, ${headerLength} bytes) is not valid JSON: ${(e as Error).message}`, 'header');
  }
  if (!isObject(header)) fail(source, `header is ${kindOf(header)}, not a JSON object of tensor entries`, 'header');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const spans: Span[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(entry)) fail(source, `__metadata__ is ${kindOf(entry)}, not an object of strings`, '__metadata__');
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== 'string') fail(source, `__metadata__ entry '${key}' is ${kindOf(value)}, not a string`, `__metadata__.${key}`);
        setOwn(metadata, key, value);
      }
      continue;
    }
    spans.push(checkEntry(source, name, entry, dataLength, dataStart));
  }
  checkTiling(source, spans, dataLength, dataStart);
  const tensors: Record<string, SafeTensor> = {};
  for (const s of spans) {
    // A copy (Node Buffers slice as views into shared memory), aligned for typed-array views.
    setOwn(tensors, s.name, { dtype: s.dtype, shape: s.shape, data: new Uint8Array(bytes.subarray(dataStart + s.begin, dataStart + s.end)) });
  }
  return { tensors, metadata };
}
