// PyTorch checkpoints in, without Python: the zip + pickle reader on files written by
// torch.save (tests/fixtures/make_pth_fixtures.py), the name mapping of the official SSQL
// layout, and the end-to-end check that an imported checkpoint gives PyTorch's features at FP
// and at 4w4a (PTQ calibrated on one batch). Plus the refusals: foreign globals, truncated or
// corrupt archives, compressed entries, the legacy format, out-of-bounds views.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, noGrad, scope } from '../../engine/index.ts';
import { Rng } from '../../engine/random.ts';
import { loadSafetensors } from '../../ssql/checkpoint/files-node.ts';
import { importPth } from '../../ssql/checkpoint/import-node.ts';
import { formatImportReport, importTorchCheckpoint } from '../../ssql/checkpoint/import.ts';
import { checkAgainst, expectedState, inferArchitecture, mapStateDictNames } from '../../ssql/checkpoint/names.ts';
import type { Architecture } from '../../ssql/checkpoint/names.ts';
import { PickleError, unpickle } from '../../ssql/checkpoint/pickle.ts';
import { readPth } from '../../ssql/checkpoint/pth.ts';
import { CheckpointFormatError } from '../../ssql/format-error.ts';
import type { SafeTensor } from '../../ssql/checkpoint/safetensors.ts';
import { crc32 } from '../../ssql/checkpoint/zip.ts';
import { Augmenter } from '../../ssql/data/augment.ts';
import { extractFeatures } from '../../ssql/eval/index.ts';
import type { ImageSet } from '../../ssql/eval/index.ts';
import { SimSiamNet, TINY_RESNET } from '../../ssql/models/resnet.ts';
import type { ResNetConfig } from '../../ssql/models/resnet.ts';
import { loadInto } from '../../ssql/train.ts';
import { assertClose, noLeaks } from '../helpers.ts';

interface FormatExpectation {
  dtype: string;
  shape: number[];
  data: number[];
}

interface Fixture {
  backbone: ResNetConfig;
  projDim: number;
  predHidden: number;
  mean: number[];
  std: number[];
  image_shape: [number, number, number];
  calibration_images: number[];
  test_images: number[];
  state_keys: string[];
  features_fp: number[];
  features_4w4a: number[];
  projection_fp: number[];
  prediction_fp: number[];
  formats: Record<string, FormatExpectation>;
}

const fixtures = new URL('../fixtures/', import.meta.url);
const fx = JSON.parse(readFileSync(new URL('pth_fixtures.json', fixtures), 'utf8')) as Fixture;
const OFFICIAL = new URL('ssql_official_resnet18.pth.tar', fixtures).pathname;
const officialBytes = () => new Uint8Array(readFileSync(OFFICIAL));
// Same float32 arithmetic in different orders (PyTorch CPU vs the GPU); the fixture keeps
// every quantizer input 2e-6 of its range away from a rounding boundary (see the script).
const TOL = { rtol: 1e-4, atol: 1e-5 };

function values(t: SafeTensor): number[] | bigint[] {
  const d = new Uint8Array(t.data); // aligned copy
  if (t.dtype === 'F32') return [...new Float32Array(d.buffer)];
  if (t.dtype === 'I64') return [...new BigInt64Array(d.buffer)];
  if (t.dtype === 'I32') return [...new Int32Array(d.buffer)];
  if (t.dtype === 'U8') return [...d];
  throw new Error(`unexpected dtype ${t.dtype}`);
}

function throwsWith(fn: () => unknown, pattern: RegExp, what: string): Error {
  try {
    fn();
  } catch (e) {
    assert.match((e as Error).message, pattern, `${what}: ${(e as Error).message}`);
    return e as Error;
  }
  assert.unreachable(`${what}: no error`);
  throw new Error('unreachable');
}

// ---- hand-built archives and pickles, for the refusals --------------------------------------

/** A zip with stored entries (optionally claiming another method), as torch.save lays it out. */
function storedZip(entries: [string, Uint8Array][], method = 0): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const n = enc.encode(name);
    const local = new Uint8Array(30 + n.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(8, method, true);
    lv.setUint32(14, crc32(data), true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, n.length, true);
    local.set(n, 30);
    const c = new Uint8Array(46 + n.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc32(data), true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, n.length, true);
    cv.setUint32(42, offset, true);
    c.set(n, 46);
    parts.push(local, data);
    central.push(c);
    offset += local.length + data.length;
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, eocd];
  const out = new Uint8Array(all.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of all) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

interface PickleWriter {
  bytes: number[];
  start(): PickleWriter;
  op(...b: number[]): PickleWriter;
  global(module: string, name: string): PickleWriter;
  str(s: string): PickleWriter;
  int(n: number): PickleWriter;
  done(): Uint8Array;
}

/** Pickle opcodes, written by hand (protocol 2). */
const P: PickleWriter = {
  bytes: [] as number[],
  start() { this.bytes = [0x80, 0x02]; return this; },
  op(...b: number[]) { this.bytes.push(...b); return this; },
  global(module: string, name: string) { return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`)); },
  str(s: string) {
    const b = new TextEncoder().encode(s);
    return this.op(0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b);
  },
  int(n: number) { return this.op(0x4b, n); },
  done(): Uint8Array { return Uint8Array.from([...this.bytes, 0x2e]); },
};
const MARK = 0x28;
const TUPLE = 0x74;
const REDUCE = 0x52;
const EMPTY_DICT = 0x7d;
const SETITEM = 0x73;
const NEWFALSE = 0x89;
const BINPERSID = 0x51;
const EMPTY_TUPLE = 0x29;

/** {'w': tensor of `size` elements viewing a FloatStorage of `numel` elements}. */
function tensorPickle(size: number, numel: number): Uint8Array {
  return P.start().op(EMPTY_DICT).str('w')
    .global('torch._utils', '_rebuild_tensor_v2').op(MARK)
    .op(MARK).str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(numel).op(TUPLE, BINPERSID)
    .int(0).op(MARK).int(size).op(TUPLE).op(MARK).int(1).op(TUPLE).op(NEWFALSE)
    .global('collections', 'OrderedDict').op(EMPTY_TUPLE, REDUCE)
    .op(TUPLE, REDUCE, SETITEM).done();
}

// ---- the reader ---------------------------------------------------------------------------

test('readPth: every storage type, views with offsets and strides, 0-d and empty tensors, parameters, nested values', () => {
  const ckpt = readPth(readFileSync(new URL('pth_formats.pth', fixtures)), 'pth_formats.pth');
  assert.is(ckpt.stateDictPath, 'model');
  assert.equal(Object.keys(ckpt.tensors), Object.keys(fx.formats), 'tensor names in the file\'s order');
  const outType: Record<string, string> = {
    float32: 'F32', float16: 'F32', bfloat16: 'F32', float64: 'F32', int64: 'I64',
    int32: 'I32', int16: 'I32', int8: 'I32', uint8: 'U8', bool: 'U8',
  };
  for (const [name, want] of Object.entries(fx.formats)) {
    const t = ckpt.tensors[name];
    assert.is(t.dtype, outType[want.dtype], `${name} dtype`);
    assert.equal(t.shape, want.shape, `${name} shape`);
    const got = values(t);
    const expected = t.dtype === 'I64' ? want.data.map((v) => BigInt(v)) : t.dtype === 'F32' ? want.data.map(Math.fround) : want.data;
    assert.equal(got, expected, `${name} values`);
  }
  assert.equal(ckpt.values, {
    epoch: 7, big: String(2n ** 70n), negative: -123456789, lr: 0.125, name: 'résnet-18 ✓',
    'flags.0': true, 'flags.1': false, 'flags.2': null, 'shape.0': 3, 'shape.1': 4,
    'history.loss.0': 1.5, 'history.loss.1': 0.75, 'history.steps.0': 10, 'history.steps.1': 20,
  });
  assert.equal(ckpt.otherTensors, ['bn_state.weight', 'bn_state.bias', 'bn_state.running_mean', 'bn_state.running_var', 'bn_state.num_batches_tracked']);
});

test('readPth: the official SSQL checkpoint layout {epoch, arch, state_dict, optimizer}', () => {
  const ckpt = readPth(officialBytes(), 'official');
  assert.is(ckpt.stateDictPath, 'state_dict');
  assert.equal(Object.keys(ckpt.tensors), fx.state_keys);
  assert.is(ckpt.values.epoch, 200);
  assert.is(ckpt.values.arch, 'cifar_resnet18');
  assert.ok(ckpt.otherTensors.length > 0 && ckpt.otherTensors.every((k) => /^optimizer\.state\.\d+\.momentum_buffer$/.test(k)), ckpt.otherTensors.join(', '));
  const nbt = ckpt.tensors['encoder_q.model.conv1.bn_function.num_batches_tracked'];
  assert.equal([nbt.dtype, nbt.shape, values(nbt)], ['I64', [], [1234n]]);
});

// ---- the names --------------------------------------------------------------------------------

test('names: the official SSQL layout maps onto SimSiamNet; only the quantizer state is unused, nothing is missing', () => {
  const ckpt = readPth(officialBytes(), 'official');
  const mapping = mapStateDictNames(ckpt.tensors);
  assert.is(mapping.layout, 'ssql');
  const arch = inferArchitecture(mapping.tensors);
  assert.equal(arch, { backbone: fx.backbone, projDim: fx.projDim, predHidden: fx.predHidden });
  const checked = checkAgainst(mapping, expectedState(arch));
  assert.equal(checked.missing, []);
  const quantizerKeys = fx.state_keys.filter((k) => k.includes('_quantizer.'));
  assert.ok(quantizerKeys.length > 0);
  assert.equal(checked.unused.map((u) => u.key), quantizerKeys);
  assert.ok(checked.unused.every((u) => /quantizer state/.test(u.reason)));
  // Spot checks of the bn_function rules.
  const src = mapping.sources;
  assert.is(src['encoder.bn1.running_var'], 'encoder_q.model.conv1.bn_function.running_var');
  assert.is(src['encoder.layer2.0.bn2.weight'], 'encoder_q.model.layer2.0.conv2.bn_function.weight');
  assert.is(src['encoder.layer3.0.downsample.0.weight'], 'encoder_q.model.layer3.0.downsample.weight');
  assert.is(src['encoder.layer3.0.downsample.1.bias'], 'encoder_q.model.layer3.0.downsample.bn_function.bias');
  assert.is(src['encoder.fc.7.running_mean'], 'encoder_q.model.fc.6.bn_function.running_mean');
  assert.is(src['predictor.1.weight'], 'predictor.1.weight');
});

test('names: SimSiam (module.encoder.*), MoCo v2 (module.encoder_q.*) and torchvision layouts', () => {
  const t = (shape: number[]): SafeTensor => ({ dtype: 'F32', shape, data: new Uint8Array(shape.reduce((n, d) => n * d, 1) * 4) });
  const bn = (prefix: string, n: number) => Object.fromEntries(['weight', 'bias', 'running_mean', 'running_var'].map((k) => [`${prefix}.${k}`, t([n])]));
  const resnet = (p: string) => ({
    [`${p}conv1.weight`]: t([4, 1, 3, 3]), ...bn(`${p}bn1`, 4),
    [`${p}layer1.0.conv1.weight`]: t([4, 4, 3, 3]), ...bn(`${p}layer1.0.bn1`, 4),
    [`${p}layer1.0.conv2.weight`]: t([4, 4, 3, 3]), ...bn(`${p}layer1.0.bn2`, 4),
  });
  const simsiam = mapStateDictNames({ ...resnet('module.encoder.'), 'module.predictor.0.weight': t([2, 8]) });
  assert.is(simsiam.layout, 'simsiam');
  assert.is(simsiam.sources['encoder.layer1.0.bn2.running_mean'], 'module.encoder.layer1.0.bn2.running_mean');
  assert.is(simsiam.sources['predictor.0.weight'], 'module.predictor.0.weight');
  const moco = mapStateDictNames({
    ...resnet('module.encoder_q.'), ...resnet('module.encoder_k.'),
    'module.encoder_q.fc.0.weight': t([8, 4]), 'module.encoder_q.fc.0.bias': t([8]), 'module.queue': t([8, 16]),
  });
  assert.is(moco.layout, 'moco');
  assert.is(moco.sources['encoder.conv1.weight'], 'module.encoder_q.conv1.weight');
  assert.ok(moco.unused.some((u) => u.key === 'module.encoder_k.conv1.weight' && /key \(momentum\) encoder/.test(u.reason)));
  assert.ok(moco.unused.some((u) => u.key === 'module.queue'));
  // MoCo's MLP head (Linear with bias, ReLU, Linear) is not our projector: unused, not loaded.
  const arch = inferArchitecture(moco.tensors);
  assert.is(arch.projDim, undefined);
  const checked = checkAgainst(moco, expectedState(arch));
  assert.ok(checked.unused.some((u) => u.key === 'module.encoder_q.fc.0.bias'));
  assert.ok(!('encoder.fc.0.weight' in checked.tensors));
  // torchvision: plain names, a classifier `fc` that is not ours, num_batches_tracked missing.
  const tv = mapStateDictNames({ ...resnet(''), 'fc.weight': t([10, 4]), 'fc.bias': t([10]) });
  assert.is(tv.layout, 'torchvision');
  const tvArch = inferArchitecture(tv.tensors);
  assert.equal(tvArch.backbone, { block: 'basic', layers: [1], widths: [4], inChannels: 1 });
  const tvChecked = checkAgainst(tv, expectedState(tvArch));
  assert.equal(tvChecked.unused.map((u) => u.key).sort(), ['fc.bias', 'fc.weight']);
  assert.equal(tvChecked.missing, ['encoder.bn1.num_batches_tracked', 'encoder.layer1.0.bn1.num_batches_tracked', 'encoder.layer1.0.bn2.num_batches_tracked']);
  // An ImageNet stem is refused by name.
  throwsWith(() => inferArchitecture(mapStateDictNames({ 'conv1.weight': t([64, 3, 7, 7]) }).tensors, 'tv.pth'), /tv\.pth: the stem convolution is 7x7.*CIFAR/, 'ImageNet stem');
});

test('names: expectedState lists exactly SimSiamNet\'s state dict (names, shapes, dtypes)', () => noLeaks(async () => {
  const cases: Architecture[] = [
    { backbone: fx.backbone, projDim: fx.projDim, predHidden: fx.predHidden },
    { backbone: TINY_RESNET, projDim: 16, predHidden: 8 },
    { backbone: { block: 'bottleneck', layers: [1, 2], widths: [4, 8], inChannels: 3 }, projDim: 8, predHidden: 4 },
  ];
  for (const arch of cases) {
    const net = new SimSiamNet({ backbone: arch.backbone, projDim: arch.projDim!, predHidden: arch.predHidden! }, new Rng(1).next);
    const own = net.stateDict();
    const want = expectedState(arch);
    assert.equal([...want.keys()].sort(), [...own.keys()].sort(), `${arch.backbone.block} ${arch.backbone.layers}: names`);
    for (const [name, t] of own) {
      assert.equal(want.get(name)!.shape, [...t.shape], `${name} shape`);
      assert.is(want.get(name)!.dtype, t.dtype === 'i32' ? 'I64' : 'F32', `${name} dtype`);
    }
    for (const t of own.values()) t.dispose();
    net.ctx.dispose();
  }
}));

// ---- end to end: PyTorch's features ---------------------------------------------------------

function imageSet(bytes: number[]): ImageSet {
  const [channels, height, width] = fx.image_shape;
  const count = bytes.length / (channels * height * width);
  return { images: Uint8Array.from(bytes), labels: new Int32Array(count), count, channels, height, width };
}

test('import: the official SSQL ResNet-18 gives PyTorch\'s features at FP and 4w4a, and its projector and predictor outputs', () => noLeaks(async () => {
  const { tensors, report } = importTorchCheckpoint(officialBytes(), 'official.pth.tar');
  assert.equal(report.missing, []);
  assert.is(report.loaded, Object.keys(tensors).length);
  const net = new SimSiamNet({ backbone: report.architecture.backbone, projDim: report.architecture.projDim!, predHidden: report.architecture.predHidden! }, new Rng(7).next);
  loadInto(net, tensors, 'official.pth.tar');
  const [channels, height, width] = fx.image_shape;
  // Calibration without augmentation (full crop, no flip, jitter or grayscale), so PyTorch can
  // see the same batch: the min/max over the normalized calibration images.
  const identity = new Augmenter({
    channels: channels as 3, height, width, mean: fx.mean, std: fx.std,
    scale: [1, 1], ratio: [1, 1], flipP: 0, jitterP: 0, grayscaleP: 0,
  });
  const testSet = imageSet(fx.test_images);
  const calibration = imageSet(fx.calibration_images);
  const fp = await extractFeatures(net.encoder, testSet, 'fp', { augmenter: identity });
  assertClose(fp.data, fx.features_fp, TOL, 'FP features');
  const q = await extractFeatures(net.encoder, testSet, '4w4a', { calibration, augmenter: identity });
  assertClose(q.data, fx.features_4w4a, TOL, '4w4a features');
  // Quantization changed the features (the comparison above is not FP twice).
  assert.ok(q.data.some((v, i) => Math.abs(v - fp.data[i]) > 1e-2), '4w4a differs from FP');

  net.eval();
  const [z, p] = scope(() => noGrad(() => {
    const batch = identity.uploadBatch(testSet.images, testSet.count);
    const zz = net.encoder.forward(identity.normalizeOnly(batch));
    const pp = net.predictor.forward(zz);
    batch.dispose();
    return [zz, pp];
  }));
  assertClose(await z.toArray(), fx.projection_fp, TOL, 'projection (FP, BN eval)');
  assertClose(await p.toArray(), fx.prediction_fp, TOL, 'prediction (FP, BN eval)');
  for (const t of [z, p, ...net.stateDict().values()]) t.dispose();
  net.ctx.dispose();
}));

test('importPth writes safetensors atomically with the mapped tensors, metadata and report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssql-pth-'));
  try {
    const out = join(dir, 'imported.safetensors');
    const report = importPth(OFFICIAL, out);
    assert.equal(readdirSync(dir), ['imported.safetensors'], 'no temporary file left');
    const { tensors, metadata } = loadSafetensors(out);
    const direct = importTorchCheckpoint(officialBytes(), OFFICIAL);
    assert.equal(Object.keys(tensors).sort(), Object.keys(direct.tensors).sort());
    for (const [k, t] of Object.entries(direct.tensors)) assert.equal([...tensors[k].data], [...t.data], k);
    assert.is(metadata.format, 'ssql-webgpu-import-1');
    assert.is(metadata.layout, 'ssql');
    assert.equal(JSON.parse(metadata.architecture), report.architecture);
    assert.is(metadata.model, undefined, 'narrow widths are not a preset');
    const text = formatImportReport(report);
    assert.match(text, /ssql layout \(state dict under 'state_dict'\)/);
    assert.match(text, /unused: \d+ keys: quantizer state/);
    assert.match(text, /not imported: \d+ tensors outside the state dict/);
    assert.not.match(text, /missing/);
    throwsWith(() => importPth(join(dir, 'absent.pth'), join(dir, 'x.safetensors')), /ENOENT|no such file/, 'absent input');
    assert.not.ok(existsSync(join(dir, 'x.safetensors')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- refusals ---------------------------------------------------------------------------------

test('pickle: a foreign GLOBAL (os.system, a pickled nn.Module) is refused by name, nothing runs', () => {
  const evil = P.start().global('os', 'system').str('echo pwned').op(0x85, REDUCE).done();
  const e = throwsWith(() => unpickle(evil, { source: 'evil.pkl' }), /evil\.pkl: pickle offset 2: refusing GLOBAL 'os\.system'.*Nothing from the file is ever executed/, 'os.system');
  assert.instance(e, PickleError);
  throwsWith(() => readPth(storedZip([['evil/data.pkl', evil]]), 'evil.pth'), /evil\.pth \(evil\/data\.pkl\): pickle offset 2: refusing GLOBAL 'os\.system'/, 'os.system in a .pth');
  const module = P.start().global('__main__', 'Net').op(EMPTY_TUPLE, REDUCE).done();
  throwsWith(() => unpickle(module), /refusing GLOBAL '__main__\.Net'.*state_dict\(\)/, 'whole module');
  // An allowed type marker is still not callable.
  const call = P.start().global('torch', 'FloatStorage').op(EMPTY_TUPLE, REDUCE).done();
  throwsWith(() => readPth(storedZip([['x/data.pkl', call]]), 'x.pth'), /'torch\.FloatStorage' is allowed only as a type marker/, 'marker call');
  // Unsupported opcodes (INST, OBJ: old-style object construction) are refused by name.
  throwsWith(() => unpickle(Uint8Array.from([0x80, 0x02, 0x69, 0x6f, 0x73, 0x0a])), /opcode 0x69 \(INST\) is not supported/, 'INST');
});

test('readPth: truncated, corrupt, compressed, legacy and out-of-bounds files give clear errors', () => {
  const bytes = officialBytes();
  const e = throwsWith(() => readPth(bytes.subarray(0, Math.floor(bytes.length * 0.6)), 'cut.pth'), /cut\.pth: no zip end-of-central-directory record.*truncated/, 'truncated');
  assert.instance(e, CheckpointFormatError);
  // A flipped byte inside a storage: the CRC names the record.
  const zipNames = new TextDecoder('latin1').decode(bytes);
  const record = zipNames.indexOf('ssql_official_resnet18.pth/data/0');
  assert.ok(record > 0);
  const corrupt = bytes.slice();
  corrupt[record + 'ssql_official_resnet18.pth/data/0'.length + 100] ^= 0xff; // inside the first storage (after the padded header)
  throwsWith(() => readPth(corrupt, 'bad.pth'), /bad\.pth: entry 'ssql_official_resnet18\.pth\/data\/0'.*CRC-32/, 'corrupt storage');
  // A truncated pickle inside a valid archive.
  const pkl = tensorPickle(4, 4);
  throwsWith(() => readPth(storedZip([['t/data.pkl', pkl.subarray(0, 30)], ['t/data/0', new Uint8Array(16)]]), 't.pth'), /t\.pth \(t\/data\.pkl\): pickle offset \d+: .*truncated/, 'truncated pickle');
  // A view reaching past its storage.
  throwsWith(() => readPth(storedZip([['t/data.pkl', tensorPickle(10, 4)], ['t/data/0', new Uint8Array(16)]]), 't.pth'), /t\.pth: tensor 'w': size \(10\) .*reaches element 9 of a storage of 4/, 'out of bounds');
  // A storage record shorter than its element count says.
  throwsWith(() => readPth(storedZip([['t/data.pkl', tensorPickle(4, 4)], ['t/data/0', new Uint8Array(12)]]), 't.pth'), /storage t\/data\/0 holds 12 bytes, 4 elements of FloatStorage need 16/, 'short storage');
  // The same archive, well formed, reads.
  assert.equal(values(readPth(storedZip([['t/data.pkl', tensorPickle(4, 4)], ['t/data/0', new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer)]]), 't.pth').tensors.w), [1, 2, 3, 4]);
  throwsWith(() => readPth(storedZip([['t/data.pkl', pkl]], 8), 'deflated.pth'), /entry 't\/data\.pkl' is compressed \(zip method 8\); torch\.save writes only stored entries/, 'deflate');
  throwsWith(() => readPth(Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc]), 'old.pth'), /old\.pth: the legacy torch\.save format/, 'legacy');
  throwsWith(() => readPth(new TextEncoder().encode('hello'), 'text.pth'), /text\.pth: not a PyTorch checkpoint .*68 65 6c 6c/, 'not a checkpoint');
  throwsWith(() => readPth(storedZip([['a/constants.pkl', new Uint8Array(1)], ['a/code/m.py', new Uint8Array(1)]]), 'script.pt'), /TorchScript archive/, 'TorchScript');
  throwsWith(() => readPth(storedZip([['t/data.pkl', P.start().op(0x5d).done()]]), 'list.pth'), /list\.pth: the saved object is a list, not a dict/, 'not a dict');
});

test.run();
