// The IDX format (MNIST, Fashion-MNIST): big-endian header `00 00 TT DD`, DD dimension sizes
// as u32, then the data. Platform independent: parses bytes (Node's file loading and gunzip
// live in ssql/data/files-node.ts).

export interface IdxArray {
  dims: number[];
  /** Element type of the data; MNIST files are u8. */
  type: 'u8' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64';
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<number, [IdxArray['type'], number]> = {
  0x08: ['u8', 1], 0x09: ['i8', 1], 0x0b: ['i16', 2], 0x0c: ['i32', 4], 0x0d: ['f32', 4], 0x0e: ['f64', 8],
};

export class DataFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataFormatError';
  }
}

export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (bytes.length < 4) throw new DataFormatError(`${source}: ${bytes.length} bytes is too short for an IDX header`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const gz = bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (it is gzip-compressed; decompress it first)' : '';
    throw new DataFormatError(`${source}: bad IDX magic ${[...bytes.slice(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')} at offset 0, expected 00 00 <type> <ndim>${gz}`);
  }
  const typeInfo = TYPES[bytes[2]];
  if (!typeInfo) throw new DataFormatError(`${source}: unknown IDX element type 0x${bytes[2].toString(16)} at offset 2`);
  const ndim = bytes[3];
  if (ndim === 0) throw new DataFormatError(`${source}: IDX header declares 0 dimensions (offset 3)`);
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) throw new DataFormatError(`${source}: truncated header: ${bytes.length} bytes, the ${ndim} dimension sizes need ${headerBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const [type, width] = typeInfo;
  const count = dims.reduce((n, d) => n * d, 1);
  const need = headerBytes + count * width;
  if (bytes.length < need) {
    throw new DataFormatError(`${source}: truncated: dims [${dims.join(', ')}] need ${need} bytes, the data ends at offset ${bytes.length}`);
  }
  if (bytes.length > need) throw new DataFormatError(`${source}: ${bytes.length - need} unexpected trailing bytes after offset ${need}`);
  const body = bytes.subarray(headerBytes, need);
  if (type === 'u8') return { dims, type, data: new Uint8Array(body) };
  if (type === 'i8') return { dims, type, data: new Int8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
  // Multi-byte types are big-endian in IDX.
  const out = type === 'i16' ? new Int16Array(count) : type === 'i32' ? new Int32Array(count) : type === 'f32' ? new Float32Array(count) : new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const o = headerBytes + i * width;
    out[i] = type === 'i16' ? view.getInt16(o, false) : type === 'i32' ? view.getInt32(o, false) : type === 'f32' ? view.getFloat32(o, false) : view.getFloat64(o, false);
  }
  return { dims, type, data: out };
}

/** Build an IDX file (u8 data): for tests and for exporting subsets. */
export function encodeIdxU8(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 0x08, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
