// The evaluation's costs and the fast probe's tuning on real Fashion-MNIST checkpoints (README,
// "Evaluation"). Not part of `npm run bench`: a tool, run as
//   node --import ./tools/ts-loader.mjs bench/probe.ts COMMAND ...
// CKPT is a checkpoint.safetensors, or 'untrained' (the small model's initialization at seed 0,
// compare's untrained baseline).
//   speed CKPT [N=2048] [BATCHES=256,1024] [SETTINGS=fp,4w4a] [ROUNDS=2]
//       feature extraction speed on the first N test images, alternating batch sizes and settings
//   extract CKPT DIR [TRAIN=10000] [TEST=10000] [SETTING=fp]
//       times the extraction and writes DIR/{train,test}-SETTING.f32 (+ .json: count, dim, labels)
//   sweep DIR SETTING LRS EPOCHS SCHEDULES [TRAIN=0] [TEST=0]
//       the fast protocol's probe (standardized features) at every lr x epochs x schedule
//       (comma-separated lists) on extracted features: one Markdown row each (top-1 %, seconds)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeDevice } from '../engine/device-node.ts';
import { openEvalCheckpoint } from '../ssql/cli.ts';
import { loadBackbone } from '../ssql/checkpoint/load.ts';
import { head } from '../ssql/commands/evaluate-node.ts';
import { untrainedTrainer } from '../ssql/commands/compare-node.ts';
import { loadDataset } from '../ssql/data/datasets-node.ts';
import { extractFeatures, trainLinear } from '../ssql/eval/index.ts';
import type { Features, LinearSchedule } from '../ssql/eval/index.ts';
import type { ResNet } from '../ssql/models/resnet.ts';
import { DEFAULT_CONFIG } from '../ssql/train.ts';

const DATA = 'fashion-mnist';

function encoderOf(ckpt: string): ResNet {
  if (ckpt === 'untrained') return untrainedTrainer({ ...DEFAULT_CONFIG, model: 'small', batchSize: 128 }, 0, loadDataset(DATA, 'train')).net.encoder;
  return loadBackbone(openEvalCheckpoint(ckpt, DATA));
}

const list = (text: string) => text.split(',').map((s) => s.trim()).filter(Boolean);

function load(dir: string, name: string, setting: string, n: number): { f: Features; labels: number[] } {
  const meta = JSON.parse(readFileSync(join(dir, `${name}-${setting}.json`), 'utf8')) as { count: number; dim: number; labels: number[] };
  const buf = readFileSync(join(dir, `${name}-${setting}.f32`));
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const count = n > 0 ? Math.min(n, meta.count) : meta.count;
  return { f: { data: all.slice(0, count * meta.dim), count, dim: meta.dim }, labels: meta.labels.slice(0, count) };
}

const [cmd, ...rest] = process.argv.slice(2);
const e = await initNodeDevice();
try {
  if (cmd === 'speed') {
    const [ckpt, n = '2048', batches = '256,1024', settings = 'fp,4w4a', rounds = '2'] = rest;
    const encoder = encoderOf(ckpt);
    const train = loadDataset(DATA, 'train');
    const set = head(loadDataset(DATA, 'test'), Number(n));
    await extractFeatures(encoder, head(set, 256), 'fp', { calibration: train }); // compiles the kernels
    for (let r = 0; r < Number(rounds); r++) {
      for (const setting of list(settings)) {
        for (const b of list(batches).map(Number)) {
          const t0 = performance.now();
          await extractFeatures(encoder, set, setting, { calibration: train, batchSize: b });
          const s = (performance.now() - t0) / 1000;
          console.log(`round ${r} ${setting} batch ${b}: ${set.count} images in ${s.toFixed(1)} s = ${(set.count / s).toFixed(0)} images/s`);
        }
      }
    }
  } else if (cmd === 'extract') {
    const [ckpt, dir, ntr = '10000', nte = '10000', setting = 'fp'] = rest;
    mkdirSync(dir, { recursive: true });
    const encoder = encoderOf(ckpt);
    const train = head(loadDataset(DATA, 'train'), Number(ntr));
    const test = head(loadDataset(DATA, 'test'), Number(nte));
    for (const [name, set] of [['train', train], ['test', test]] as const) {
      const t0 = performance.now();
      const f = await extractFeatures(encoder, set, setting, { calibration: train });
      const s = (performance.now() - t0) / 1000;
      console.log(`${setting} ${name}: ${set.count} images in ${s.toFixed(1)} s = ${(set.count / s).toFixed(0)} images/s`);
      writeFileSync(join(dir, `${name}-${setting}.f32`), new Uint8Array(f.data.buffer));
      writeFileSync(join(dir, `${name}-${setting}.json`), JSON.stringify({ count: f.count, dim: f.dim, labels: Array.from(set.labels.subarray(0, set.count)) }));
    }
  } else if (cmd === 'sweep') {
    const [dir, setting, lrs, epochsList, schedules, ntr = '0', nte = '0'] = rest;
    const tr = load(dir, 'train', setting, Number(ntr));
    const te = load(dir, 'test', setting, Number(nte));
    console.log(`${setting}, ${tr.f.count} train / ${te.f.count} test features\n| schedule | lr | epochs | top-1 (%) | s |\n|---|---:|---:|---:|---:|`);
    for (const schedule of list(schedules) as LinearSchedule[]) {
      for (const epochs of list(epochsList).map(Number)) {
        for (const lr of list(lrs).map(Number)) {
          const t0 = performance.now();
          const acc = await trainLinear(tr.f, tr.labels, te.f, te.labels, { lr, epochs, schedule });
          console.log(`| ${schedule} | ${lr} | ${epochs} | ${acc.toFixed(2)} | ${((performance.now() - t0) / 1000).toFixed(1)} |`);
        }
      }
    }
  } else {
    console.error('usage: bench/probe.ts speed|extract|sweep ... (see the file header)');
    process.exitCode = 2;
  }
} finally {
  e.destroy();
}
