// The evaluation's image sets: validation, the augmenter made for them, and batch gathering.
import { Augmenter } from '../data/augment.ts';
import type { LabeledImages } from '../data/cifar.ts';
import { normalization } from '../train.ts';

/** Images and labels, as the dataset readers return them. */
export type ImageSet = LabeledImages;

export function checkSet(what: string, s: ImageSet): void {
  const bytes = s.channels * s.height * s.width;
  if (!Number.isInteger(s.count) || s.count <= 0) throw new RangeError(`${what}: no images (count ${s.count})`);
  if (s.images.length < s.count * bytes) throw new RangeError(`${what}: ${s.count} images of ${s.channels}x${s.height}x${s.width} need ${s.count * bytes} bytes, got ${s.images.length}`);
  if (s.labels.length < s.count) throw new RangeError(`${what}: ${s.count} images but ${s.labels.length} labels`);
}

/** An augmenter for `set`'s image shape with the dataset's normalization. */
export function makeAugmenter(set: ImageSet, seed: number): Augmenter {
  if (set.channels !== 1 && set.channels !== 3) throw new RangeError(`evaluation: images must have 1 or 3 channels, got ${set.channels}`);
  const { mean, std } = normalization(set.channels);
  return new Augmenter({ channels: set.channels, height: set.height, width: set.width, mean, std, seed });
}

/** Images `idx[from..to)` copied into `staging`, or without `idx` images `from..to` (a view). */
export function gatherImages(set: ImageSet, from: number, to: number, staging: Uint8Array, idx?: ArrayLike<number>): Uint8Array {
  const bytes = set.channels * set.height * set.width;
  if (!idx) return set.images.subarray(from * bytes, to * bytes);
  for (let i = from; i < to; i++) {
    const src = idx[i] * bytes;
    staging.set(set.images.subarray(src, src + bytes), (i - from) * bytes);
  }
  return staging.subarray(0, (to - from) * bytes);
}

/** The number of classes: the largest label + 1 over all the label lists. */
export function numClasses(...labels: ArrayLike<number>[]): number {
  let k = 0;
  for (const l of labels) for (let i = 0; i < l.length; i++) k = Math.max(k, l[i] + 1);
  return k;
}
