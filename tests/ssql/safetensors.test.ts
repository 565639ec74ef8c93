import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors } from '../../ssql/checkpoint/safetensors.ts';
import { loadSafetensors, saveSafetensors } from '../../ssql/checkpoint/files-node.ts';

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

test('safetensors round-trip with metadata; header is 8-byte aligned JSON', () => {
  const bytes = encodeSafetensors({
    'layer1.0.conv1.weight': { dtype: 'F32', shape: [2, 1, 1, 1], data: f32([1.5, -2]) },
    'bn1.num_batches_tracked': { dtype: 'I64', shape: [], data: new Uint8Array(new BigInt64Array([7n]).buffer) },
  }, { epoch: '3' });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.is((8 + headerLen) % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  assert.equal(header['layer1.0.conv1.weight'], { dtype: 'F32', shape: [2, 1, 1, 1], data_offsets: [8, 16] });
  assert.equal(header['bn1.num_batches_tracked'].data_offsets, [0, 8]);
  const { tensors, metadata } = decodeSafetensors(bytes);
  assert.equal(metadata, { epoch: '3' });
  assert.equal([...new Float32Array(tensors['layer1.0.conv1.weight'].data.buffer)], [1.5, -2]);
  assert.is(new BigInt64Array(tensors['bn1.num_batches_tracked'].data.buffer)[0], 7n);
});

test('safetensors: truncated files, bad headers and size mismatches are named', () => {
  const bytes = encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: f32([1, 2, 3]) } });
  assert.throws(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), 'c.safetensors'), /c\.safetensors: tensor 'w' ends at offset \d+, past the end of the file .*truncated/);
  assert.throws(() => decodeSafetensors(bytes.subarray(0, 4), 'c.safetensors'), /too short/);
  const junk = new Uint8Array(64);
  new DataView(junk.buffer).setBigUint64(0, 1000n, true);
  assert.throws(() => decodeSafetensors(junk, 'j'), /header length 1000 at offset 0 exceeds the file/);
  assert.throws(() => encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: f32([1]) } }), /'w' has 4 bytes, shape \[2\] F32 needs 8/);
});

test('saving writes a temporary file and renames it; a failed save keeps the old file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssql-ckpt-'));
  const path = join(dir, 'model.safetensors');
  saveSafetensors(path, { w: { dtype: 'F32', shape: [1], data: f32([4]) } });
  const before = readFileSync(path);
  assert.throws(() => saveSafetensors(path, { w: { dtype: 'F32', shape: [2], data: f32([4]) } }), /needs 8/);
  assert.equal(readFileSync(path), before);
  assert.equal(readdirSync(dir), ['model.safetensors']);
  assert.equal([...new Float32Array(loadSafetensors(path).tensors.w.data.buffer)], [4]);
  writeFileSync(join(dir, 'x'), 'x');
  assert.ok(existsSync(join(dir, 'x')));
});

test.run();
