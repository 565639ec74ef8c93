import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeIdxU8, parseIdx } from '../../ssql/data/idx.ts';
import { parseCifar } from '../../ssql/data/cifar.ts';
import { loadCifarFiles, loadIdxPair } from '../../ssql/data/files-node.ts';

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
  assert.throws(() => parseCifar(cifarRecord([10], 0), 'cifar10', 'c.bin'), /label 10 at offset 0 is out of range/);
  const p1 = join(dir, 'data_batch_1.bin');
  writeFileSync(p1, ten);
  const both = loadCifarFiles([p1, p1], 'cifar10');
  assert.is(both.count, 4);
  assert.equal([...both.labels], [3, 9, 3, 9]);
});

test.run();
