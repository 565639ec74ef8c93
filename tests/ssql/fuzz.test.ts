// Seeded fuzzing of the file readers: valid safetensors and IDX files are made in memory, then
// truncated, extended, and byte-flipped (mostly inside their headers, where the structure is);
// safetensors headers are also mutated as JSON (a field, a dimension, an offset or the whole
// entry replaced by a value of another type or sign) and re-encoded.
// Every mutant must either parse into something consistent or be refused with the project's
// own FormatError naming the file; a RangeError, TypeError or SyntaxError from JavaScript's
// internals escaping a reader fails the test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeSafetensors, decodeSafetensors } from '../../ssql/checkpoint/safetensors.ts';
import type { SafeTensor } from '../../ssql/checkpoint/safetensors.ts';
import { assertFinite } from '../../ssql/checkpoint/finite.ts';
import { encodeIdxU8, idxImagePair } from '../../ssql/data/idx.ts';
import { Rng } from '../../engine/index.ts';
import { FormatError } from '../../ssql/format-error.ts';

const CASES = 400;
const WIDTH: Record<string, number> = { F32: 4, I32: 4, U32: 4, I64: 8, F64: 8, U8: 1 };
/** Bytes that move JSON between valid and invalid, and numbers between sizes. */
const JSON_BYTES = [...'{}[]",:-0123456789 eE.nul'].map((c) => c.charCodeAt(0));

interface Mutant {
  bytes: Uint8Array;
  how: string;
}

/** One seeded mutation of `base`; `headerEnd` is where its header ends (the interesting part). */
function mutate(base: Uint8Array, headerEnd: number, rng: Rng): Mutant {
  const kind = rng.int(0, 6);
  if (kind === 0) {
    const at = rng.int(0, base.length);
    return { bytes: base.slice(0, at), how: `truncated to ${at} of ${base.length} bytes` };
  }
  if (kind === 1) {
    const extra = rng.int(1, 40);
    const out = new Uint8Array(base.length + extra);
    out.set(base);
    for (let i = base.length; i < out.length; i++) out[i] = rng.int(0, 256);
    return { bytes: out, how: `${extra} random bytes appended` };
  }
  const out = base.slice();
  const flips = rng.int(1, 5);
  const where: string[] = [];
  for (let f = 0; f < flips; f++) {
    // Mostly the header: flips in tensor data only change values.
    const at = rng.next() < 0.8 ? rng.int(0, headerEnd) : rng.int(0, base.length);
    if (kind === 2) out[at] ^= 1 << rng.int(0, 8);
    else if (kind === 3) out[at] = rng.int(0, 256);
    else out[at] = JSON_BYTES[rng.int(0, JSON_BYTES.length)];
    where.push(`${at}=0x${out[at].toString(16)}`);
  }
  return { bytes: out, how: `${['', '', 'bit flips', 'random bytes', 'JSON-ish bytes', 'JSON-ish bytes'][kind]} at ${where.join(', ')}` };
}

/** Values of every JSON type, signs and sizes a header field should never hold. */
const ODD_VALUES: unknown[] = [null, true, -1, 0, 1.5, -0.5, 1e300, 2 ** 53, 'F32', 'F16', 'x', '__proto__', [], [1], [-3, -3], [0, 1, 2], [2, 1], {}, { dtype: 'F32' }];

/** Replace one value somewhere in a safetensors header (parsed JSON) and re-encode the file
 * around the original data bytes. */
function mutateHeader(base: Uint8Array, headerEnd: number, rng: Rng): Mutant {
  const header = JSON.parse(new TextDecoder().decode(base.subarray(8, headerEnd))) as Record<string, unknown>;
  const value = structuredClone(ODD_VALUES[rng.int(0, ODD_VALUES.length)]);
  const names = Object.keys(header);
  const name = names[rng.int(0, names.length)];
  const entry = header[name] as Record<string, unknown>;
  const fields = Object.keys(entry);
  const field = fields[rng.int(0, fields.length)];
  const target = rng.int(0, 5);
  let how: string;
  let json: unknown = header;
  if (target === 0) {
    json = value;
    how = 'header';
  } else if (target === 1) {
    header[name] = value;
    how = name;
  } else if (target === 2 || !Array.isArray(entry[field])) {
    entry[field] = value;
    how = `${name}.${field}`;
  } else {
    const list = entry[field] as unknown[];
    const i = rng.int(0, list.length + 1);
    list[i] = value;
    how = `${name}.${field}[${i}]`;
  }
  const text = new TextEncoder().encode(JSON.stringify(json) ?? '');
  const out = new Uint8Array(8 + text.length + base.length - headerEnd);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(base.subarray(headerEnd), 8 + text.length);
  return { bytes: out, how: `${how} = ${JSON.stringify(value)}` };
}

type Mutator = (base: Uint8Array, headerEnd: number, rng: Rng) => Mutant;

/** Runs `read` on each mutant; returns how many parsed and how many were refused, and fails on
 * any error that is not a FormatError for one of `files`. */
function fuzz(name: string, base: Uint8Array, headerEnd: number, seed: number, files: string[], read: (m: Uint8Array) => void, mutators: Mutator[] = [mutate]): { parsed: number; refused: number } {
  const rng = new Rng(seed);
  let parsed = 0;
  let refused = 0;
  const wrong: string[] = [];
  for (let c = 0; c < CASES; c++) {
    const m = mutators[c % mutators.length](base, headerEnd, rng);
    try {
      read(m.bytes);
      parsed++;
    } catch (e) {
      const err = e as Error;
      if (e instanceof FormatError && e.file !== undefined && files.includes(e.file) && err.message.startsWith(`${e.file}: `)) refused++;
      else wrong.push(`case ${c} (${m.how}): ${err?.name}: ${err?.message}`);
    }
  }
  assert.equal(wrong.slice(0, 5), [], `${name}: ${wrong.length} of ${CASES} mutants neither parsed consistently nor were refused by name`);
  return { parsed, refused };
}

test('safetensors: truncated, extended and byte-flipped checkpoints parse consistently or give a named error', () => {
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tensors: Record<string, SafeTensor> = {
    'encoder.conv1.weight': { dtype: 'F32', shape: [3, 1, 2, 2], data: bytes(Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.5)) },
    'encoder.bn1.num_batches_tracked': { dtype: 'I64', shape: [], data: bytes(BigInt64Array.from([12n])) },
    'encoder.bn1.running_var': { dtype: 'F64', shape: [3], data: bytes(Float64Array.from([1, 0.5, 2])) },
    'predictor.0.weight': { dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
    'labels': { dtype: 'I32', shape: [2, 2], data: bytes(Int32Array.from([1, -2, 3, 4])) },
    'mask': { dtype: 'U8', shape: [5], data: Uint8Array.from([1, 0, 1, 1, 0]) },
  };
  const base = encodeSafetensors(tensors, { config: JSON.stringify({ method: 'ssql', lr: 0.05 }), rng: '[1,2,3,4]' });
  const headerEnd = 8 + Number(new DataView(base.buffer).getBigUint64(0, true));
  const file = 'fuzz.safetensors';
  const t0 = performance.now();
  const { parsed, refused } = fuzz('safetensors', base, headerEnd, 1234, [file], (m) => {
    const r = decodeSafetensors(m, file);
    assertFinite(r.tensors, file);
    for (const [name, t] of Object.entries(r.tensors)) {
      const need = t.shape.reduce((n, d) => n * d, 1) * WIDTH[t.dtype];
      assert.is(t.data.byteLength, need, `${name}: a parsed tensor's bytes match its shape`);
    }
    for (const v of Object.values(r.metadata)) assert.type(v, 'string');
  }, [mutate, mutateHeader]);
  const ms = performance.now() - t0;
  assert.ok(parsed > 0 && refused > CASES / 2, `the mutants exercise both outcomes (parsed ${parsed}, refused ${refused})`);
  assert.ok(ms < 2500, `${CASES} cases in ${ms.toFixed(0)} ms`);
});

test('IDX image/label pairs: truncated, extended and byte-flipped files parse consistently or give a named error', () => {
  const count = 6;
  const images = encodeIdxU8([count, 3, 4], Uint8Array.from({ length: count * 12 }, (_, i) => (i * 41) % 256));
  const labels = encodeIdxU8([count], Uint8Array.from([0, 9, 3, 3, 7, 1]));
  const files = ['train-images.idx', 'train-labels.idx'];
  const check = (img: Uint8Array, lab: Uint8Array) => {
    const d = idxImagePair(img, lab, files[0], files[1], 10);
    assert.is(d.images.length, d.count * d.height * d.width);
    assert.is(d.labels.length, d.count);
    assert.ok(d.labels.every((l) => l >= 0 && l < 10), 'parsed labels are class indices');
  };
  const t0 = performance.now();
  // Image files (header: 4 + 4 * 3 bytes), then label files (4 + 4), each with its valid partner.
  const a = fuzz('IDX images', images, 16, 99, files, (m) => check(m, labels));
  const b = fuzz('IDX labels', labels, 8, 7, files, (m) => check(images, m));
  const ms = performance.now() - t0;
  assert.ok(a.parsed > 0 && a.refused > CASES / 2 && b.parsed > 0 && b.refused > CASES / 2,
    `the mutants exercise both outcomes (images ${a.parsed}/${a.refused}, labels ${b.parsed}/${b.refused})`);
  assert.ok(ms < 2500, `${2 * CASES} cases in ${ms.toFixed(0)} ms`);
});

test.run();
