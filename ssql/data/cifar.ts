// The CIFAR-10/100 binary format: fixed-size records of label byte(s) followed by a 32x32x3
// image stored channel-major (1024 R, 1024 G, 1024 B). CIFAR-10 has one label byte; CIFAR-100
// has two (coarse, fine). Every failure is a DataFormatError naming the source and the offset.
import { DataFormatError } from '../format-error.ts';

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

/** Classes per variant (CIFAR-100: the fine labels; its coarse labels have 20). */
export const CIFAR_CLASSES = { cifar10: 10, cifar100: 100 } as const;
const CIFAR100_COARSE_CLASSES = 20;

export function parseCifar(bytes: Uint8Array, variant: 'cifar10' | 'cifar100', source = 'CIFAR data'): LabeledImages {
  const labelBytes = variant === 'cifar10' ? 1 : 2;
  const record = labelBytes + IMAGE_BYTES;
  if (bytes.length === 0) throw new DataFormatError(`${source}: empty file`, { file: source, field: 'record 0' });
  if (bytes.length % record !== 0) {
    const full = Math.floor(bytes.length / record);
    throw new DataFormatError(`${source}: truncated or not ${variant}: ${bytes.length} bytes is not a multiple of the ${record}-byte record (record ${full} is incomplete at offset ${full * record})`, { file: source, field: `record ${full}` });
  }
  const count = bytes.length / record;
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Int32Array(count);
  const classes = CIFAR_CLASSES[variant];
  const badLabel = (label: number, i: number, offset: number, what: string, n: number): never => {
    throw new DataFormatError(`${source}: ${what} ${label} of record ${i} (offset ${offset}) is out of range for ${variant} (${n} classes: 0..${n - 1})`, { file: source, field: `record ${i}` });
  };
  for (let i = 0; i < count; i++) {
    const o = i * record;
    if (labelBytes === 2 && bytes[o] >= CIFAR100_COARSE_CLASSES) badLabel(bytes[o], i, o, 'coarse label', CIFAR100_COARSE_CLASSES);
    const label = bytes[o + labelBytes - 1]; // CIFAR-100: the fine label
    if (label >= classes) badLabel(label, i, o + labelBytes - 1, 'label', classes);
    labels[i] = label;
    images.set(bytes.subarray(o + labelBytes, o + record), i * IMAGE_BYTES);
  }
  return { images, labels, count, channels: 3, height: 32, width: 32 };
}
