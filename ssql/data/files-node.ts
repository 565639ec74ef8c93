// Node only: reading dataset files from disk (gzip or plain).
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { DataFormatError } from '../format-error.ts';
import { idxImagePair } from './idx.ts';
import { parseCifar } from './cifar.ts';
import type { LabeledImages } from './cifar.ts';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

function readMaybeGzip(path: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new DataFormatError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file: path });
  }
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      throw new DataFormatError(`${path}: corrupt or truncated gzip data (${(e as Error).message})`, { file: path, field: 'gzip' });
    }
  }
  return raw;
}

/** MNIST and Fashion-MNIST have 10 classes. */
export const MNIST_CLASSES = 10;

/** Images and labels from a pair of IDX files (MNIST layout), labels below `classes`. */
export function loadIdxPair(imagesPath: string, labelsPath: string, classes = MNIST_CLASSES): LabeledImages {
  return idxImagePair(readMaybeGzip(imagesPath), readMaybeGzip(labelsPath), imagesPath, labelsPath, classes);
}

/** Fashion-MNIST (or MNIST) from a directory with the standard file names. */
export function loadMnistDir(dir: string = FASHION_MNIST_DIR, split: 'train' | 't10k' = 'train', classes = MNIST_CLASSES): LabeledImages {
  const find = (stem: string) => {
    for (const suffix of ['.gz', '']) {
      const p = join(dir, `${stem}${suffix}`);
      if (existsSync(p)) return p;
    }
    throw new DataFormatError(`${dir}: missing ${stem}(.gz); on Debian, Fashion-MNIST is the package dataset-fashion-mnist`, { file: join(dir, stem) });
  };
  return loadIdxPair(find(`${split}-images-idx3-ubyte`), find(`${split}-labels-idx1-ubyte`), classes);
}

export function loadCifarFiles(paths: string[], variant: 'cifar10' | 'cifar100'): LabeledImages {
  const parts = paths.map((p) => parseCifar(readMaybeGzip(p), variant, p));
  const count = parts.reduce((n, p) => n + p.count, 0);
  const images = new Uint8Array(count * 3072);
  const labels = new Int32Array(count);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * 3072);
    labels.set(p.labels, at);
    at += p.count;
  }
  return { images, labels, count, channels: 3, height: 32, width: 32 };
}
