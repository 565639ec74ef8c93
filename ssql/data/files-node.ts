// Node only: reading dataset files from disk (gzip or plain).
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { DataFormatError, parseIdx } from './idx.ts';
import { parseCifar } from './cifar.ts';
import type { LabeledImages } from './cifar.ts';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

function readMaybeGzip(path: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new DataFormatError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      throw new DataFormatError(`${path}: corrupt or truncated gzip data (${(e as Error).message})`);
    }
  }
  return raw;
}

/** Images and labels from a pair of IDX files (MNIST layout). */
export function loadIdxPair(imagesPath: string, labelsPath: string): LabeledImages {
  const img = parseIdx(readMaybeGzip(imagesPath), imagesPath);
  const lab = parseIdx(readMaybeGzip(labelsPath), labelsPath);
  if (img.type !== 'u8' || img.dims.length !== 3) throw new DataFormatError(`${imagesPath}: expected u8 images [N, H, W], got ${img.type} [${img.dims.join(', ')}]`);
  if (lab.type !== 'u8' || lab.dims.length !== 1) throw new DataFormatError(`${labelsPath}: expected u8 labels [N], got ${lab.type} [${lab.dims.join(', ')}]`);
  if (lab.dims[0] !== img.dims[0]) throw new DataFormatError(`${labelsPath}: ${lab.dims[0]} labels for ${img.dims[0]} images in ${imagesPath}`);
  return {
    images: img.data as Uint8Array, labels: Int32Array.from(lab.data), count: img.dims[0],
    channels: 1, height: img.dims[1], width: img.dims[2],
  };
}

/** Fashion-MNIST (or MNIST) from a directory with the standard file names. */
export function loadMnistDir(dir: string = FASHION_MNIST_DIR, split: 'train' | 't10k' = 'train'): LabeledImages {
  const find = (stem: string) => {
    for (const suffix of ['.gz', '']) {
      const p = join(dir, `${stem}${suffix}`);
      if (existsSync(p)) return p;
    }
    throw new DataFormatError(`${dir}: missing ${stem}(.gz); on Debian, Fashion-MNIST is the package dataset-fashion-mnist`);
  };
  return loadIdxPair(find(`${split}-images-idx3-ubyte`), find(`${split}-labels-idx1-ubyte`));
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
