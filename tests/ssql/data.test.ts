import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { checkLabels, encodeIdxU8, idxImagePair, parseIdx } from '../../ssql/data/idx.ts';
import { parseCifar } from '../../ssql/data/cifar.ts';
import { loadCifarFiles, loadIdxPair } from '../../ssql/data/files-node.ts';
import { DataFormatError } from '../../ssql/format-error.ts';

const dir = mkdtempSync(join(tmpdir(), 'ssql-data-'));

test('IDX: images and labels round-trip, gzip or plain', () => {
  const pixels = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => (i * 37) % 256);
  const imgPath = join(dir, 'img.idx.gz');
  const labPath = join(dir, 'lab.idx');
  writeFileSync(imgPath, gzipSync(encodeIdxU8([3, 4, 5], pixels)));
  writeFileSync(labPath, encodeIdxU8([3], Uint8Array.from([7, 0, 9])));
  const d = loadIdxPair(imgPath, labPath);
  assert.is(d.count, 3);
  assert.equal([d.channels, d.height, d.width], [1, 4, 5]);
  assert.equal([...d.images], [...pixels]);
  assert.equal([...d.labels], [7, 0, 9]);
});

test('IDX: wrong magic, truncated data, trailing bytes and count mismatch are named', () => {
  const good = encodeIdxU8([2, 2, 2], new Uint8Array(8));
  const bad = good.slice();
  bad[0] = 0x42;
  assert.throws(() => parseIdx(bad, 'x.idx'), /x\.idx: bad IDX magic 42 00 08 03 at offset 0/);
  assert.throws(() => parseIdx(good.subarray(0, good.length - 3), 'x.idx'), /x\.idx: truncated: dims \[2, 2, 2\] need 24 bytes, the data ends at offset 21/);
  assert.throws(() => parseIdx(good.subarray(0, 9), 'x.idx'), /truncated header/);
  const trailing = new Uint8Array(good.length + 2);
  trailing.set(good);
  assert.throws(() => parseIdx(trailing, 'x.idx'), /2 unexpected trailing bytes after offset 24/);
  assert.throws(() => parseIdx(gzipSync(good), 'y.gz'), /gzip-compressed/);
  const imgPath = join(dir, 'i2.idx');
  const labPath = join(dir, 'l2.idx');
  writeFileSync(imgPath, good);
  writeFileSync(labPath, encodeIdxU8([3], new Uint8Array(3)));
  assert.throws(() => loadIdxPair(imgPath, labPath), /3 labels for 2 images/);
  assert.throws(() => loadIdxPair(join(dir, 'missing'), labPath), /missing: cannot read \(ENOENT\)/);
  writeFileSync(join(dir, 'broken.gz'), gzipSync(good).subarray(0, 20));
  assert.throws(() => loadIdxPair(join(dir, 'broken.gz'), labPath), /corrupt or truncated gzip/);
});

/** `fn` must throw a DataFormatError for `file` whose message matches. */
function refuses(fn: () => unknown, file: string, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, DataFormatError);
    assert.is((e as DataFormatError).file, file);
    assert.ok((e as Error).message.startsWith(`${file}: `), (e as Error).message);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`accepted, expected ${pattern}`);
}

test('IDX labels are checked against the class count (10 for MNIST layouts), naming the file and the index', () => {
  const images = encodeIdxU8([4, 2, 2], new Uint8Array(16));
  const labels = (values: number[]) => encodeIdxU8([values.length], Uint8Array.from(values));
  assert.equal([...idxImagePair(images, labels([0, 9, 3, 9]), 'i', 'l', 10).labels], [0, 9, 3, 9]);
  refuses(() => idxImagePair(images, labels([0, 9, 10, 1]), 'img.idx', 'lab.idx', 10), 'lab.idx', /label 10 at index 2 \(offset 10\) is not a class index for 10 classes \(0\.\.9\)/);
  refuses(() => idxImagePair(images, labels([200, 0, 0, 0]), 'img.idx', 'lab.idx', 10), 'lab.idx', /label 200 at index 0 \(offset 8\)/);
  assert.equal([...idxImagePair(images, labels([200, 0, 0, 0]), 'i', 'l', 201).labels], [200, 0, 0, 0], 'the class count is a parameter');
  const labPath = join(dir, 'bad-labels.idx');
  writeFileSync(labPath, labels([1, 2, 11, 3]));
  writeFileSync(join(dir, 'four.idx'), images);
  refuses(() => loadIdxPair(join(dir, 'four.idx'), labPath), labPath, /label 11 at index 2/);
  refuses(() => checkLabels([0, -1], 3, 'x'), 'x', /label -1 at index 1/);
  refuses(() => idxImagePair(encodeIdxU8([0, 2, 2], new Uint8Array(0)), labels([]), 'empty.idx', 'l', 10), 'empty.idx', /no images \(dims \[0, 2, 2\]\)/);
  refuses(() => idxImagePair(encodeIdxU8([4, 4], new Uint8Array(16)), labels([0, 0, 0, 0]), 'flat.idx', 'l', 10), 'flat.idx', /expected u8 images \[N, H, W\], got u8 \[4, 4\]/);
});

function cifarRecord(labelBytes: number[], fillValue: number): Uint8Array {
  const r = new Uint8Array(labelBytes.length + 3072);
  r.set(labelBytes);
  for (let i = 0; i < 3072; i++) r[labelBytes.length + i] = (fillValue + i) % 256;
  return r;
}

test('CIFAR-10 and CIFAR-100 records parse; truncation and bad labels are named', () => {
  const ten = new Uint8Array([...cifarRecord([3], 1), ...cifarRecord([9], 5)]);
  const d = parseCifar(ten, 'cifar10');
  assert.is(d.count, 2);
  assert.equal([...d.labels], [3, 9]);
  assert.is(d.images[3072], 5);
  assert.is(d.images[3072 + 1024], (5 + 1024) % 256); // green plane of image 1
  const hundred = new Uint8Array([...cifarRecord([1, 42], 0)]);
  assert.equal([...parseCifar(hundred, 'cifar100').labels], [42]);
  assert.throws(() => parseCifar(ten.subarray(0, 5000), 'cifar10', 'b.bin'), /b\.bin: truncated or not cifar10: 5000 bytes .*record 1 is incomplete at offset 3073/);
  refuses(() => parseCifar(new Uint8Array([...cifarRecord([3], 0), ...cifarRecord([10], 0)]), 'cifar10', 'c.bin'), 'c.bin', /label 10 of record 1 \(offset 3073\) is out of range for cifar10 \(10 classes: 0\.\.9\)/);
  refuses(() => parseCifar(cifarRecord([1, 100], 0), 'cifar100', 'h.bin'), 'h.bin', /label 100 of record 0 \(offset 1\) is out of range for cifar100 \(100 classes: 0\.\.99\)/);
  refuses(() => parseCifar(cifarRecord([20, 5], 0), 'cifar100', 'h.bin'), 'h.bin', /coarse label 20 of record 0 \(offset 0\) is out of range for cifar100 \(20 classes: 0\.\.19\)/);
  assert.equal([...parseCifar(cifarRecord([19, 99], 0), 'cifar100').labels], [99]);
  refuses(() => parseCifar(new Uint8Array(0), 'cifar10', 'e.bin'), 'e.bin', /empty file/);
  const p1 = join(dir, 'data_batch_1.bin');
  writeFileSync(p1, ten);
  const both = loadCifarFiles([p1, p1], 'cifar10');
  assert.is(both.count, 4);
  assert.equal([...both.labels], [3, 9, 3, 9]);
});

test.run();
