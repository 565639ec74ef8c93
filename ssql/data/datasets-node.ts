// Node only: named datasets for the CLI. `fashion-mnist` is Debian's dataset-fashion-mnist;
// `mnist:DIR` any directory of MNIST-layout IDX files; `cifar10:DIR` / `cifar100:DIR` the
// standard binary releases.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataFormatError } from '../format-error.ts';
import { FASHION_MNIST_DIR, loadCifarFiles, loadMnistDir } from './files-node.ts';
import type { LabeledImages } from './cifar.ts';

export function loadDataset(spec: string, split: 'train' | 'test'): LabeledImages {
  const [kind, dir] = spec.includes(':') ? [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)] : [spec, ''];
  switch (kind) {
    case 'fashion-mnist':
      if (!existsSync(FASHION_MNIST_DIR)) {
        throw new DataFormatError(`Fashion-MNIST is not installed at ${FASHION_MNIST_DIR}: install it with 'apt-get install dataset-fashion-mnist', or pass --data mnist:DIR`);
      }
      return loadMnistDir(dir || FASHION_MNIST_DIR, split === 'train' ? 'train' : 't10k');
    case 'mnist':
      if (!dir) throw new DataFormatError(`--data mnist:DIR needs a directory`);
      return loadMnistDir(dir, split === 'train' ? 'train' : 't10k');
    case 'cifar10': {
      const files = split === 'train' ? [1, 2, 3, 4, 5].map((i) => join(dir, `data_batch_${i}.bin`)) : [join(dir, 'test_batch.bin')];
      return loadCifarFiles(files, 'cifar10');
    }
    case 'cifar100':
      return loadCifarFiles([join(dir, split === 'train' ? 'train.bin' : 'test.bin')], 'cifar100');
    default:
      throw new DataFormatError(`unknown dataset '${spec}': use fashion-mnist, mnist:DIR, cifar10:DIR or cifar100:DIR`);
  }
}
