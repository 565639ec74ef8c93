// The CIFAR-10/100 binary format: fixed-size records of label byte(s) followed by a 32x32x3
// image stored channel-major (1024 R, 1024 G, 1024 B). CIFAR-10 has one label byte; CIFAR-100
// has two (coarse, fine).
import { DataFormatError } from './idx.ts';

export interface LabeledImages {
  /** N x C x H x W bytes. */
  images: Uint8Array;
  labels: Int32Array;
  count: number;
  channels: number;
  height: number;
  width: number;
}

const IMAGE_BYTES = 32 * 32 * 3;

export function parseCifar(bytes: Uint8Array, variant: 'cifar10' | 'cifar100', source = 'CIFAR data'): LabeledImages {
  const labelBytes = variant === 'cifar10' ? 1 : 2;
  const record = labelBytes + IMAGE_BYTES;
  if (bytes.length === 0) throw new DataFormatError(`${source}: empty file`);
  if (bytes.length % record !== 0) {
    const full = Math.floor(bytes.length / record);
    throw new DataFormatError(`${source}: truncated or not ${variant}: ${bytes.length} bytes is not a multiple of the ${record}-byte record (record ${full} is incomplete at offset ${full * record})`);
  }
  const count = bytes.length / record;
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Int32Array(count);
  const maxLabel = variant === 'cifar10' ? 9 : 99;
  for (let i = 0; i < count; i++) {
    const o = i * record;
    const label = bytes[o + labelBytes - 1]; // CIFAR-100: the fine label
    if (label > maxLabel) throw new DataFormatError(`${source}: label ${label} at offset ${o + labelBytes - 1} is out of range for ${variant} (0..${maxLabel})`);
    labels[i] = label;
    images.set(bytes.subarray(o + labelBytes, o + record), i * IMAGE_BYTES);
  }
  return { images, labels, count, channels: 3, height: 32, width: 32 };
}
