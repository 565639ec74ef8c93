// The IDX format (MNIST, Fashion-MNIST): big-endian header `00 00 TT DD`, DD dimension sizes
// as u32, then the data. Platform independent: parses bytes (Node's file loading and gunzip
// live in ssql/data/files-node.ts). Every failure is a DataFormatError naming the source and the
// offset or field.
import { DataFormatError } from '../format-error.ts';
import type { LabeledImages } from './cifar.ts';

export { DataFormatError };

export interface IdxArray {
  dims: number[];
  /** Element type of the data; MNIST files are u8. */
  type: 'u8' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64';
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<number, [IdxArray['type'], number]> = {
  0x08: ['u8', 1], 0x09: ['i8', 1], 0x0b: ['i16', 2], 0x0c: ['i32', 4], 0x0d: ['f32', 4], 0x0e: ['f64', 8],
};

/** Bytes before the data of an IDX file with `ndim` dimensions. */
export function idxHeaderBytes(ndim: number): number {
  return 4 + 4 * ndim;
}

export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  const fail = (message: string, field: string): never => {
    throw new DataFormatError(`${source}: ${message}`, { file: source, field });
  };
  if (bytes.length < 4) fail(`${bytes.length} bytes is too short for an IDX header`, 'magic');
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const gz = bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (it is gzip-compressed; decompress it first)' : '';
    fail(`bad IDX magic ${[...bytes.slice(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')} at offset 0, expected 00 00 <type> <ndim>${gz}`, 'magic');
  }
  const typeInfo = TYPES[bytes[2]];
  if (!typeInfo) fail(`unknown IDX element type 0x${bytes[2].toString(16)} at offset 2`, 'type');
  const ndim = bytes[3];
  if (ndim === 0) fail(`IDX header declares 0 dimensions (offset 3)`, 'ndim');
  const headerBytes = idxHeaderBytes(ndim);
  if (bytes.length < headerBytes) fail(`truncated header: ${bytes.length} bytes, the ${ndim} dimension sizes need ${headerBytes}`, 'dims');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const [type, width] = typeInfo;
  const count = dims.reduce((n, d) => n * d, 1);
  const need = headerBytes + count * width;
  if (bytes.length < need) fail(`truncated: dims [${dims.join(', ')}] need ${need} bytes, the data ends at offset ${bytes.length}`, 'data');
  if (bytes.length > need) fail(`${bytes.length - need} unexpected trailing bytes after offset ${need}`, 'data');
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

/** Labels must be class indices below `classes`; the first one that is not is named with its
 * index and file offset (`dataOffset`: where label 0 sits in the file). */
export function checkLabels(labels: ArrayLike<number>, classes: number, source: string, dataOffset = 0): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!(Number.isInteger(l) && l >= 0 && l < classes)) {
      throw new DataFormatError(`${source}: label ${l} at index ${i} (offset ${dataOffset + i}) is not a class index for ${classes} classes (0..${classes - 1})`, { file: source, field: `label ${i}` });
    }
  }
}

/**
 * Images and labels from the bytes of an MNIST-layout pair of IDX files: u8 images [N, H, W]
 * and u8 labels [N], each label below `classes` (10 for MNIST and Fashion-MNIST). The names
 * appear in errors.
 */
export function idxImagePair(imageBytes: Uint8Array, labelBytes: Uint8Array, imagesName: string, labelsName: string, classes: number): LabeledImages {
  const img = parseIdx(imageBytes, imagesName);
  const lab = parseIdx(labelBytes, labelsName);
  if (img.type !== 'u8' || img.dims.length !== 3) {
    throw new DataFormatError(`${imagesName}: expected u8 images [N, H, W], got ${img.type} [${img.dims.join(', ')}]`, { file: imagesName, field: 'dims' });
  }
  if (lab.type !== 'u8' || lab.dims.length !== 1) {
    throw new DataFormatError(`${labelsName}: expected u8 labels [N], got ${lab.type} [${lab.dims.join(', ')}]`, { file: labelsName, field: 'dims' });
  }
  const [count, height, width] = img.dims;
  if (count === 0 || height === 0 || width === 0) {
    throw new DataFormatError(`${imagesName}: no images (dims [${img.dims.join(', ')}])`, { file: imagesName, field: 'dims' });
  }
  if (lab.dims[0] !== count) throw new DataFormatError(`${labelsName}: ${lab.dims[0]} labels for ${count} images in ${imagesName}`, { file: labelsName, field: 'dims' });
  checkLabels(lab.data, classes, labelsName, idxHeaderBytes(1));
  return { images: img.data as Uint8Array, labels: Int32Array.from(lab.data), count, channels: 1, height, width };
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
