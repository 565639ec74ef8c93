import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors } from '../../ssql/checkpoint/safetensors.ts';
import { loadSafetensors, saveSafetensors } from '../../ssql/checkpoint/files-node.ts';
import { assertFinite, findNonFinite } from '../../ssql/checkpoint/finite.ts';
import { CheckpointFormatError, FormatError } from '../../ssql/format-error.ts';

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

/** A safetensors file with a header given as JSON text, and `dataBytes` zero bytes of data. */
function rawFile(headerJson: string | Uint8Array, dataBytes: number): Uint8Array {
  const header = typeof headerJson === 'string' ? new TextEncoder().encode(headerJson) : headerJson;
  const out = new Uint8Array(8 + header.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  return out;
}

/** Decoding must throw a CheckpointFormatError whose message matches and which names the file. */
function refuses(bytes: Uint8Array, pattern: RegExp, field?: string): void {
  try {
    decodeSafetensors(bytes, 'bad.safetensors');
  } catch (e) {
    assert.instance(e, CheckpointFormatError);
    const err = e as CheckpointFormatError;
    assert.ok(err.message.startsWith('bad.safetensors: '), err.message);
    assert.match(err.message, pattern);
    assert.is(err.file, 'bad.safetensors');
    if (field !== undefined) assert.is(err.field, field);
    return;
  }
  assert.unreachable(`accepted, expected ${pattern}`);
}

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

test('safetensors header: type, JSON, metadata and each entry are validated, naming the tensor and field', () => {
  const w = (entry: string) => `{"w":${entry}}`;
  refuses(rawFile('null', 0), /header is null, not a JSON object/, 'header');
  refuses(rawFile('[1,2]', 0), /header is an array/, 'header');
  refuses(rawFile('"text"', 0), /header is a string/, 'header');
  refuses(rawFile('{"w":', 0), /header \(offset 8, 5 bytes\) is not valid JSON/, 'header');
  refuses(rawFile(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]), 0), /not valid UTF-8/, 'header');
  refuses(rawFile('{"__metadata__":"x"}', 0), /__metadata__ is a string, not an object of strings/, '__metadata__');
  refuses(rawFile('{"__metadata__":{"rng":[1,2]}}', 0), /__metadata__ entry 'rng' is an array, not a string/, '__metadata__.rng');
  refuses(rawFile(w('7'), 0), /tensor 'w': header entry is a number/, 'w');
  refuses(rawFile(w('{"shape":[1],"data_offsets":[0,4]}'), 4), /tensor 'w': dtype is missing, not a string/, 'w.dtype');
  refuses(rawFile(w('{"dtype":"F16","shape":[1],"data_offsets":[0,2]}'), 2), /tensor 'w': dtype 'F16' is not one this reader supports \(F32, /, 'w.dtype');
  refuses(rawFile(w('{"dtype":"toString","shape":[1],"data_offsets":[0,4]}'), 4), /dtype 'toString' is not one/, 'w.dtype');
  refuses(rawFile(w('{"dtype":"F32","shape":3,"data_offsets":[0,12]}'), 12), /tensor 'w': shape is a number, not an array/, 'w.shape');
  refuses(rawFile(w('{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}'), 12), /tensor 'w': shape \[-3\] has -3 at axis 0, not a non-negative integer/, 'w.shape');
  refuses(rawFile(w('{"dtype":"F32","shape":[2,1.5],"data_offsets":[0,12]}'), 12), /has 1\.5 at axis 1/, 'w.shape');
  refuses(rawFile(w('{"dtype":"F32","shape":["3"],"data_offsets":[0,12]}'), 12), /has "3" at axis 0/, 'w.shape');
  refuses(rawFile(w('{"dtype":"F32","shape":[3]}'), 12), /tensor 'w': data_offsets is missing, not \[begin, end\]/, 'w.data_offsets');
  refuses(rawFile(w('{"dtype":"F32","shape":[3],"data_offsets":[0,4,12]}'), 12), /data_offsets is an array of 3/, 'w.data_offsets');
  refuses(rawFile(w('{"dtype":"F32","shape":[3],"data_offsets":[-4,8]}'), 12), /data_offsets \[-4, 8\] are not integers with 0 <= begin <= end/, 'w.data_offsets');
  refuses(rawFile(w('{"dtype":"F32","shape":[0],"data_offsets":[8,4]}'), 12), /data_offsets \[8, 4\] are not integers/, 'w.data_offsets');
  refuses(rawFile(w('{"dtype":"F32","shape":[3],"data_offsets":[0,"12"]}'), 12), /data_offsets \[0, "12"\]/, 'w.data_offsets');
  refuses(rawFile(w('{"dtype":"F32","shape":[4],"data_offsets":[0,16]}'), 12), /tensor 'w' ends at offset \d+, past the end of the file \(\d+ bytes\): truncated/, 'w.data_offsets');
  refuses(rawFile(w('{"dtype":"F32","shape":[2],"data_offsets":[0,12]}'), 12), /tensor 'w' spans 12 bytes, shape \[2\] F32 needs 8/, 'w.data_offsets');
  refuses(rawFile(w('{"dtype":"F32","shape":[9007199254740991,2],"data_offsets":[0,8]}'), 8), /spans 8 bytes/, 'w.data_offsets');
});

test('safetensors data section: overlapping tensors, gaps and trailing bytes are refused; a header length past the file too', () => {
  const two = (a: string, b: string) => `{"a":{"dtype":"F32","shape":[2],"data_offsets":${a}},"b":{"dtype":"F32","shape":[2],"data_offsets":${b}}}`;
  refuses(rawFile(two('[0,8]', '[4,12]'), 12), /tensor 'b' \(data bytes 4\.\.12\) overlaps 'a' \(0\.\.8\)/, 'b.data_offsets');
  refuses(rawFile(two('[0,8]', '[0,8]'), 8), /overlaps/);
  refuses(rawFile(two('[0,8]', '[12,20]'), 20), /data bytes 8\.\.12 belong to no tensor \(before 'b'\)/, 'b.data_offsets');
  refuses(rawFile(two('[0,8]', '[8,16]'), 20), /4 bytes after the last tensor's data \(file offset \d+\) belong to no tensor/, 'data');
  assert.is(Object.keys(decodeSafetensors(rawFile(two('[8,16]', '[0,8]'), 16)).tensors).length, 2, 'any order of offsets is fine when they tile');
  const huge = rawFile('{}', 0);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  refuses(huge, /header length 18446744073709551615 at offset 0 exceeds the file \(10 bytes\)/, 'header length');
});

test('safetensors: a tensor named __proto__ is an ordinary entry, not a prototype', () => {
  const { tensors, metadata } = decodeSafetensors(rawFile('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"__proto__":"m"}}', 1));
  assert.equal(Object.keys(tensors), ['__proto__']);
  assert.is(Object.getPrototypeOf(tensors), Object.prototype);
  assert.is(Object.getOwnPropertyDescriptor(metadata, '__proto__')?.value, 'm');
});

test('non-finite values: found per tensor; assertFinite and loading name the file and the tensor', () => {
  const tensors = {
    'encoder.conv1.weight': { dtype: 'F32' as const, shape: [2, 2], data: f32([1, NaN, Infinity, NaN]) },
    'encoder.bn1.running_var': { dtype: 'F64' as const, shape: [2], data: new Uint8Array(Float64Array.from([1, -Infinity]).buffer) },
    'encoder.bn1.weight': { dtype: 'F32' as const, shape: [2], data: f32([1, 2]) },
    'encoder.bn1.num_batches_tracked': { dtype: 'I64' as const, shape: [], data: new Uint8Array(new BigInt64Array([-1n]).buffer) },
  };
  assert.equal(findNonFinite(tensors), [
    { name: 'encoder.conv1.weight', count: 3, index: 1, value: NaN },
    { name: 'encoder.bn1.running_var', count: 1, index: 1, value: -Infinity },
  ]);
  // An unaligned view (a tensor sliced out of a larger buffer) is read correctly too.
  const unaligned = new Uint8Array(9);
  unaligned.set(f32([Infinity, 2]), 1);
  assert.equal(findNonFinite({ u: { dtype: 'F32', shape: [2], data: unaligned.subarray(1) } }), [{ name: 'u', count: 1, index: 0, value: Infinity }]);
  const finite = { 'encoder.bn1.weight': tensors['encoder.bn1.weight'] };
  assert.is(assertFinite(finite, 'ok.safetensors'), finite);
  try {
    assertFinite(tensors, 'run/checkpoint.safetensors');
    assert.unreachable('accepted NaN weights');
  } catch (e) {
    assert.instance(e, FormatError);
    const err = e as FormatError;
    assert.match(err.message, /^run\/checkpoint\.safetensors: tensor 'encoder\.conv1\.weight' F32 \[2, 2\] holds 3 non-finite values, the first NaN at index 1 \(and 1 more tensors: 'encoder\.bn1\.running_var'\); .*cannot be evaluated or resumed/);
    assert.is(err.field, 'encoder.conv1.weight');
    assert.is(err.file, 'run/checkpoint.safetensors');
  }
  const dir = mkdtempSync(join(tmpdir(), 'ssql-ckpt-'));
  const path = join(dir, 'diverged.safetensors');
  saveSafetensors(path, tensors, { config: '{}' });
  assert.is(Object.keys(decodeSafetensors(readFileSync(path), path).tensors).length, 4, 'the file itself is well-formed');
  // The file lists tensors by name, so the first one named is now the BN's.
  assert.throws(() => loadSafetensors(path), (e: unknown) => e instanceof CheckpointFormatError && e.message.startsWith(`${path}: tensor 'encoder.bn1.running_var' F64 [2] holds 1 non-finite values, the first -Infinity at index 1 (and 1 more tensors: 'encoder.conv1.weight')`));
  assert.throws(() => loadSafetensors(join(dir, 'absent.safetensors')), (e: unknown) => e instanceof CheckpointFormatError && /absent\.safetensors: cannot read \(ENOENT\)/.test(e.message));
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
