// PyTorch checkpoints and deployment through the command line, run as a user runs it (a child
// process): `ssql import`, `eval` and `pretrain --init` reading .pth files directly, and
// `ssql export` writing ONNX and packed weights calibrated as evaluation calibrates. The
// official-layout fixture is a narrow 3-channel ResNet-18, so eval and export run on a small
// CIFAR-10-format directory written here; `--init` uses a torchvision-layout 'tiny' ResNet
// (tests/fixtures/make_init_fixture.py) on Fashion-MNIST.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Linear } from '../../engine/nn/index.ts';
import { Rng } from '../../engine/random.ts';
import { loadSafetensors, saveSafetensors } from '../../ssql/checkpoint/files-node.ts';
import { disposeBackbone, loadBackbone } from '../../ssql/checkpoint/load.ts';
import { readCheckpoint } from '../../ssql/checkpoint/read-node.ts';
import type { SafeTensor } from '../../ssql/checkpoint/safetensors.ts';
import { loadDataset } from '../../ssql/data/datasets-node.ts';
import { makeAugmenter } from '../../ssql/eval/images.ts';
import { captureQuantizedModel } from '../../ssql/export/model.ts';
import { toOnnx } from '../../ssql/export/onnx.ts';
import { packedWeights } from '../../ssql/export/packed.ts';
import { quantizeActRange, quantizeWeightWithRange } from '../../ssql/export/quantize.ts';
import { normalization } from '../../ssql/train.ts';
import { assertClose } from '../helpers.ts';
import { decodeOnnx } from './onnx-reference.ts';

const bin = fileURLToPath(new URL('../../bin/ssql.mjs', import.meta.url));
const OFFICIAL = fileURLToPath(new URL('../fixtures/ssql_official_resnet18.pth.tar', import.meta.url));
const TINY = fileURLToPath(new URL('../fixtures/tiny_torchvision.pth', import.meta.url));

function ssql(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 600_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

/** A CIFAR-10 binary directory (5 training files of `perFile` records, a test file of `test`)
 * whose class is readable from the image: class c brightens rows 3c..3c+2. */
function cifarDir(perFile: number, test: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'ssql-cifar-'));
  const r = new Rng(5);
  const records = (n: number) => {
    const out = new Uint8Array(n * 3073);
    for (let i = 0; i < n; i++) {
      const c = r.int(0, 10);
      const o = i * 3073;
      out[o] = c;
      for (let p = 0; p < 3072; p++) {
        const row = Math.floor((p % 1024) / 32);
        out[o + 1 + p] = Math.min(255, r.int(0, 96) + (Math.floor(row / 3) === c ? 150 : 0));
      }
    }
    return out;
  };
  for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), records(perFile));
  writeFileSync(join(dir, 'test_batch.bin'), records(test));
  return dir;
}

const work = mkdtempSync(join(tmpdir(), 'ssql-interop-'));
const cifar = cifarDir(16, 32);
const floats = (t: SafeTensor) => [...new Float32Array(new Uint8Array(t.data).buffer)];

test('ssql import: prints what was loaded, unused and missing; the file has the tensors and a config eval can use', () => {
  const out = join(work, 'imported.safetensors');
  const r = ssql('import', OFFICIAL, '--out', out);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /ssql layout \(state dict under 'state_dict'\)/);
  assert.match(r.stdout, /loaded 145 tensors/);
  assert.match(r.stdout, /unused: 108 keys: quantizer state of the reference code/);
  assert.match(r.stdout, `wrote ${out}`);
  const { tensors, metadata } = loadSafetensors(out);
  assert.is(Object.keys(tensors).length, 145);
  assert.equal(JSON.parse(metadata.config), { method: 'ssql', projDim: 64, predHidden: 16 });
  assert.is(JSON.parse(metadata.architecture).backbone.widths.join(), '8,16,32,64');

  const tiny = ssql('import', TINY, '--out', join(work, 'tiny.safetensors'), '--json');
  assert.is(tiny.code, 0, tiny.stderr);
  const report = lastJson<{ layout: string; model: string; missing: string[]; unused: { key: string; reason: string }[] }>(tiny.stdout);
  assert.is(report.layout, 'torchvision');
  assert.is(report.model, 'tiny');
  assert.equal(report.missing, [], 'a backbone-only import misses nothing of the backbone');
  assert.equal(report.unused.map((u) => u.key), ['fc.weight', 'fc.bias']);

  for (const [args, pattern] of [
    [['import', OFFICIAL], /--out CKPT\.safetensors is required/],
    [['import', '--out', out], /give exactly one PyTorch checkpoint to import, got none/],
    [['import', OFFICIAL, TINY, '--out', out], /give exactly one PyTorch checkpoint to import, got '/],
    [['import', '/nonexistent/x.pth', '--out', out], /checkpoint not found: \/nonexistent\/x\.pth/],
    [['import', OFFICIAL, '--out', OFFICIAL], /would overwrite the checkpoint being imported/],
    [['import', out, '--out', join(work, 'again.safetensors')], /not a PyTorch checkpoint \(a torch\.save file is a zip archive/],
  ] as [string[], RegExp][]) {
    const e = ssql(...args);
    assert.ok(e.code !== 0, `ssql ${args.join(' ')} exited 0`);
    assert.match(e.stderr, pattern, `ssql ${args.join(' ')}: ${e.stderr}`);
  }
});

test('ssql eval reads a .pth directly (printing the import report) with the same results as its import', () => {
  const common = ['--data', `cifar10:${cifar}`, '--settings', 'fp,4w4a', '--linear-epochs', '3', '--json'];
  const direct = ssql('eval', '--checkpoint', OFFICIAL, ...common);
  assert.is(direct.code, 0, direct.stderr);
  const imported = ssql('eval', '--checkpoint', join(work, 'imported.safetensors'), ...common);
  assert.is(imported.code, 0, imported.stderr);
  const a = lastJson<{ results: Record<string, number> }>(direct.stdout);
  assert.equal(Object.keys(a.results), ['fp', '4w4a']);
  assert.equal(a, lastJson(imported.stdout));
  const text = ssql('eval', '--checkpoint', OFFICIAL, ...common.slice(0, -1), '--settings', 'fp');
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stderr, /ssql_official_resnet18\.pth\.tar: ssql layout/);
  assert.match(text.stdout, /^fp {4}\d+\.\d\d%/m);
});

test('ssql export: ONNX and packed weights calibrated on the batch eval uses, equal to the library\'s; a head file adds logits', async () => {
  const onnxPath = join(work, 'out', 'model.onnx');
  const r = ssql('export', '--checkpoint', OFFICIAL, '--setting', '4w4a', '--format', 'both', '--data', `cifar10:${cifar}`, '--calib-batch', '48', '--out', onnxPath, '--json');
  assert.is(r.code, 0, r.stderr);
  const summary = lastJson<{ onnx: string; packed: string; calibration: string; head: null }>(r.stdout);
  assert.is(summary.onnx, onnxPath);
  assert.is(summary.packed, join(work, 'out', 'model.packed.safetensors'));
  assert.match(summary.calibration, /one augmented batch of 48 cifar10:.* training images \(seed 0\)/);
  assert.is(summary.head, null);

  // The library on the same checkpoint, with evaluation's calibration (train set, seed 0).
  const encoder = loadBackbone(readCheckpoint(OFFICIAL));
  const train = loadDataset(`cifar10:${cifar}`, 'train');
  const model = await captureQuantizedModel(encoder, '4w4a', { calibration: train, calibBatch: 48, seed: 0, augmenter: makeAugmenter(train, 0) });
  disposeBackbone(encoder);
  const cli = decodeOnnx(new Uint8Array(readFileSync(onnxPath)));
  const lib = decodeOnnx(toOnnx(model, { normalization: normalization(3) }));
  assert.equal([...cli.initializers.keys()], [...lib.initializers.keys()]);
  for (const [name, t] of lib.initializers) assert.equal([...cli.initializers.get(name)!.data], [...t.data], name);
  assert.is(cli.metadata.get('setting'), '4w4a');
  assert.is(cli.metadata.get('source_checkpoint'), OFFICIAL);
  assert.is(cli.metadata.get('input_std'), JSON.stringify(normalization(3).std));
  const packed = loadSafetensors(summary.packed);
  const expected = packedWeights(model);
  assert.equal(Object.keys(packed.tensors).sort(), Object.keys(expected.tensors).sort());
  for (const [name, t] of Object.entries(expected.tensors)) assert.equal([...packed.tensors[name].data], [...t.data], name);
  assert.is(packed.metadata.activations, expected.metadata.activations);

  // A head from a file: the model gets 'logits' with its weights.
  const head = new Linear(64, 10, { random: new Rng(2).next });
  const headPath = join(work, 'head.safetensors');
  const toSafe = async (t: NonNullable<Linear['bias']>): Promise<SafeTensor> => ({ dtype: 'F32', shape: [...t.shape], data: new Uint8Array((await t.toArray()).buffer) });
  saveSafetensors(headPath, { 'head.weight': await toSafe(head.weight), 'head.bias': await toSafe(head.bias!) });
  const headWeight = [...(await head.weight.toArray())];
  for (const t of head.parameters()) t.dispose();
  const withHead = ssql('export', '--checkpoint', OFFICIAL, '--setting', 'fp', '--head', headPath, '--out', join(work, 'head.onnx'));
  assert.is(withHead.code, 0, withHead.stderr);
  assert.match(withHead.stdout, /wrote ONNX model .*head\.onnx\nsetting fp, head /);
  const h = decodeOnnx(new Uint8Array(readFileSync(join(work, 'head.onnx'))));
  assert.equal(h.outputs.map((o) => o.name), ['features', 'logits']);
  assert.equal([...h.initializers.get('head.weight')!.data], headWeight);

  const packedOnly = ssql('export', '--checkpoint', OFFICIAL, '--setting', '2w4a', '--format', 'packed', '--data', `cifar10:${cifar}`, '--out', join(work, 'p.safetensors'));
  assert.is(packedOnly.code, 0, packedOnly.stderr);
  assert.is(loadSafetensors(join(work, 'p.safetensors')).metadata.setting, '2w4a');
  assert.ok(!existsSync(join(work, 'p.onnx')));

  for (const [args, pattern] of [
    [['export', '--checkpoint', OFFICIAL, '--out', 'x.onnx'], /--setting is required/],
    [['export', '--checkpoint', OFFICIAL, '--setting', '4bit', '--out', 'x.onnx'], /--setting: bit setting '4bit' is not understood/],
    [['export', '--checkpoint', OFFICIAL, '--setting', '16w8a', '--out', 'x.onnx'], /ONNX's 8-bit integer types hold 2\.\.8 bits/],
    [['export', '--checkpoint', OFFICIAL, '--setting', '4w4a', '--format', 'onnx', '--weights', 'w', '--out', 'x.onnx'], /--weights is for --format both/],
    [['export', '--checkpoint', OFFICIAL, '--setting', '4w4a', '--out', join(work, 'x.onnx')], /--data fashion-mnist has 1-channel images, the backbone takes 3/],
    [['export', '--checkpoint', OFFICIAL, '--setting', 'fp', '--head', join(work, 'imported.safetensors'), '--out', join(work, 'x.onnx')], /imported\.safetensors: no 'head\.weight'/],
    [['export', '--checkpoint', '/nonexistent.pth', '--setting', 'fp', '--out', 'x.onnx'], /checkpoint not found: \/nonexistent\.pth/],
  ] as [string[], RegExp][]) {
    const e = ssql(...args);
    assert.ok(e.code !== 0, `ssql ${args.join(' ')} exited 0`);
    assert.match(e.stderr, pattern, `ssql ${args.join(' ')}: ${e.stderr}`);
  }
  assert.ok(!existsSync(join(work, 'x.onnx')), 'nothing written on errors');
});

test('pretrain --init: a torchvision .pth gives the backbone (heads fresh), a momentum encoder restarts from it; a checkpoint of the same shapes gives the heads too', () => {
  const pth = readCheckpoint(TINY);
  const common = ['--model', 'tiny', '--proj-dim', '16', '--pred-hidden', '8', '--batch', '16', '--subset', '32', '--max-steps', '1', '--lr', '1e-30', '--weight-decay', '0'];
  // lr 1e-30 (0 is refused): one step moves no weight by as much as one float32 ulp, except
  // weights at 0, which move by ~1e-30; so `same` allows 1e-20 absolute.
  const same = (a: Float32Array | number[], b: Float32Array | number[], name: string) => assertClose(a, b, { rtol: 0, atol: 1e-20 }, name);
  const first = join(work, 'init1');
  const r = ssql('pretrain', ...common, '--method', 'ssql-byol', '--init', TINY, '--out', first);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /tiny_torchvision\.pth: torchvision layout/);
  assert.match(r.stderr, /initialized from .*tiny_torchvision\.pth: backbone \(\d+ tensors\), projector initialized fresh \(not in the checkpoint\), predictor initialized fresh \(not in the checkpoint\); momentum encoder restarted as a copy/);
  const ckpt = loadSafetensors(join(first, 'checkpoint.safetensors')).tensors;
  // lr ~0: the parameters are the imported ones after the step; the target is their copy (after
  // one EMA of the copy with itself: m x + (1 - m) x, equal up to rounding).
  for (const name of ['conv1.weight', 'layer2.0.conv1.weight', 'layer3.0.downsample.0.weight', 'layer4.0.bn2.weight', 'bn1.bias']) {
    same(floats(ckpt[`encoder.${name}`]), floats(pth.tensors[`encoder.${name}`]), name);
    assertClose(floats(ckpt[`target.${name}`]), floats(pth.tensors[`encoder.${name}`]), { rtol: 1e-6, atol: 1e-9 }, `target.${name}`);
  }

  const second = join(work, 'init2');
  const again = ssql('pretrain', ...common, '--method', 'ssql', '--init', join(first, 'checkpoint.safetensors'), '--out', second);
  assert.is(again.code, 0, again.stderr);
  assert.match(again.stderr, /backbone \(\d+ tensors\), projector loaded, predictor loaded\n/);
  const ck2 = loadSafetensors(join(second, 'checkpoint.safetensors')).tensors;
  for (const name of ['encoder.fc.0.weight', 'encoder.fc.6.bias', 'predictor.3.weight']) same(floats(ck2[name]), floats(ckpt[name]), name);

  const wrong = ssql('pretrain', ...common, '--model', 'small', '--init', TINY, '--out', join(work, 'init3'));
  assert.ok(wrong.code !== 0);
  assert.match(wrong.stderr, /its backbone \(basic blocks 1\/1\/1\/1, widths 4\/8\/16\/32, 1 input channels\) is not this run's \(basic blocks 1\/1\/1\/1, widths 16\/32\/64\/128, 1 input channels\): choose the matching --model/);
  const wrongHead = ssql('pretrain', ...common, '--proj-dim', '24', '--init', join(first, 'checkpoint.safetensors'), '--out', join(work, 'init4'));
  assert.is(wrongHead.code, 0, wrongHead.stderr);
  assert.match(wrongHead.stderr, /projector initialized fresh \('encoder\.fc\.0\.weight' is \[16, 32\], this run's is \[24, 32\]\), predictor initialized fresh/);
});

test('ssql finetune: PTQ vs fine-tuned per setting, checkpoints with the frozen ranges that export and eval accept', () => {
  const pre = join(work, 'pre');
  const p = ssql('pretrain', '--method', 'ssql', '--model', 'tiny', '--proj-dim', '16', '--pred-hidden', '8', '--batch', '32', '--subset', '256', '--max-steps', '8', '--out', pre, '--json');
  assert.is(p.code, 0, p.stderr);
  const ckpt = join(pre, 'checkpoint.safetensors');
  const out = join(work, 'ft');
  const r = ssql('finetune', '--checkpoint', ckpt, '--setting', '2w4a,4w4a', '--subset', '256', '--eval-test', '128', '--epochs', '2', '--batch', '64', '--lr', '0.1', '--linear-epochs', '5', '--out', out, '--json');
  assert.is(r.code, 0, r.stderr);
  const report = lastJson<{ results: Record<string, { ptq: number; finetuned: number; checkpoint: string }>; train_images: number; test_images: number }>(r.stdout);
  assert.equal(Object.keys(report.results), ['2w4a', '4w4a']);
  assert.equal([report.train_images, report.test_images], [256, 128]);
  for (const [s, v] of Object.entries(report.results)) {
    assert.ok(v.ptq >= 0 && v.ptq <= 100 && v.finetuned >= 0 && v.finetuned <= 100, s);
    assert.is(v.checkpoint, join(out, `finetune-${s}.safetensors`));
  }
  assert.equal(JSON.parse(readFileSync(join(out, 'finetune.json'), 'utf8')).results, report.results);
  const md = readFileSync(join(out, 'finetune.md'), 'utf8');
  assert.match(md, /\| setting \| PTQ \| fine-tuned \| difference \|/);
  assert.match(md, new RegExp(`\\| 2w4a \\| ${report.results['2w4a'].ptq.toFixed(2)} \\| ${report.results['2w4a'].finetuned.toFixed(2)} \\|`));
  const tuned = loadSafetensors(report.results['2w4a'].checkpoint);
  assert.is(tuned.metadata.format, 'ssql-webgpu-finetune-1');
  const record = JSON.parse(tuned.metadata.finetune) as { setting: string; top1: number; ranges: { weights: Record<string, number[]>; activations: Record<string, [number, number]> } };
  assert.is(record.setting, '2w4a');
  assert.is(record.top1, report.results['2w4a'].finetuned);
  assert.equal(tuned.tensors['head.weight'].shape, [10, 32]);

  // Export at the fine-tuned setting uses the frozen ranges and the head.
  const onnxPath = join(work, 'ft.onnx');
  const e = ssql('export', '--checkpoint', report.results['2w4a'].checkpoint, '--setting', '2w4a', '--out', onnxPath, '--json');
  assert.is(e.code, 0, e.stderr);
  const summary = lastJson<{ calibration: string; head: string }>(e.stdout);
  assert.is(summary.calibration, 'the ranges frozen by fine-tuning at 2w4a');
  assert.is(summary.head, report.results['2w4a'].checkpoint);
  const onnx = decodeOnnx(new Uint8Array(readFileSync(onnxPath)));
  assert.equal(onnx.outputs.map((o) => o.name), ['features', 'logits']);
  const [lo, hi] = record.ranges.activations['layer1.0.act1'];
  assert.is(onnx.initializers.get('layer1.0.act1.scale')!.data[0], quantizeActRange(lo, hi, 4)!.scale, 'the frozen activation range');
  const w = new Float32Array(new Uint8Array(tuned.tensors['encoder.layer2.0.conv1.weight'].data).buffer);
  const frozenScale = quantizeWeightWithRange(w, 8, 2, record.ranges.weights['layer2.0.conv1'])!.scale;
  assert.equal([...onnx.initializers.get('layer2.0.conv1.weight_scale')!.data], [...frozenScale], 'the frozen weight range');
  const other = ssql('export', '--checkpoint', report.results['2w4a'].checkpoint, '--setting', '8w8a', '--out', join(work, 'ft8.onnx'));
  assert.is(other.code, 0, other.stderr);
  assert.match(other.stderr, /was fine-tuned at 2w4a; 8w8a is calibrated afresh/);

  const ev = ssql('eval', '--checkpoint', report.results['4w4a'].checkpoint, '--settings', 'fp', '--eval-train', '64', '--eval-test', '32', '--linear-epochs', '2', '--json');
  assert.is(ev.code, 0, ev.stderr);
  for (const [args, pattern] of [
    [['finetune', '--checkpoint', ckpt], /--setting is required/],
    [['finetune', '--checkpoint', ckpt, '--setting', 'fp'], /--setting fp: fine-tuning is at a quantized setting of 2\.\.8 bits/],
    [['finetune', '--checkpoint', ckpt, '--setting', '4w4a', '--batch', '1'], /--batch must be at least 2/],
  ] as [string[], RegExp][]) {
    const x = ssql(...args);
    assert.ok(x.code !== 0, `ssql ${args.join(' ')} exited 0`);
    assert.match(x.stderr, pattern, `ssql ${args.join(' ')}: ${x.stderr}`);
  }
});

test('cleanup', () => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cifar, { recursive: true, force: true });
});

test.run();
