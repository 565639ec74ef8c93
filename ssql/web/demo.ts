// The live training demo (browser only; served by `npm run demo`, tools/demo-server.mjs): loads
// Fashion-MNIST from the demo server (gzip IDX, decompressed with DecompressionStream) or an IDX
// file pair the user picks, trains a method of the registry (SSQL, SimSiam, BYOL, ...; the menu
// is built from ssql/methods/registry.ts) with the platform-independent Trainer on this
// page's WebGPU device, and shows the loss curve, images/s and the sampled bit pair live; a quick
// PTQ evaluation (ssql/eval/) draws accuracy per bit setting; checkpoints download and upload
// as safetensors (the CLI's format); the model exports as QDQ ONNX at a chosen bit setting
// (ssql/export/, the same code as `ssql export`).
//
// `?autotest=1[&steps=N][&eval=1][&checkpoint=1][&onnx=1]` (tests/browser/demo.mjs): trains the
// tiny model (subset 64, batch 8, crop 12) for N steps (default 3), optionally runs a minimal
// evaluation, a checkpoint round trip (encode, decode, restore into a new Trainer) and the ONNX
// export at 4w4a (the bytes, without the download), then POSTs
// what it shows to /report: loss points drawn, the bits text, images/s and every console error.
import { initWebDevice } from '../../engine/index.ts';
import { DEFAULT_CONFIG, Trainer } from '../train.ts';
import type { ModelName, TrainConfig } from '../train.ts';
import { evaluate, formatBits, parseSetting } from '../eval/index.ts';
import { makeAugmenter } from '../eval/images.ts';
import { captureQuantizedModel } from '../export/model.ts';
import { toOnnx } from '../export/onnx.ts';
import { normalization } from '../train.ts';
import type { ImageSet } from '../eval/index.ts';
import { METHODS, methodByName } from '../methods/registry.ts';
import { DataFormatError, parseIdx } from '../data/idx.ts';
import type { LabeledImages } from '../data/cifar.ts';
import { decodeSafetensors, encodeSafetensors } from '../checkpoint/safetensors.ts';
import { readConfig, resumeDifferences } from '../checkpoint/state.ts';

// ---- error capture (the autotest reports these) ----------------------------------------------

const errors: string[] = [];
function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
addEventListener('error', (ev) => errors.push(errorText(ev.error ?? ev.message)));
addEventListener('unhandledrejection', (ev) => errors.push(`unhandled rejection: ${errorText(ev.reason)}`));
const consoleError = console.error.bind(console);
console.error = (...args: unknown[]) => {
  errors.push(args.map((a) => (a instanceof Error ? errorText(a) : String(a))).join(' '));
  consoleError(...args);
};

// ---- elements ----------------------------------------------------------------------------------

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`demo.html lacks #${id}`);
  return e as T;
}
const ui = {
  sourceFmnist: el<HTMLInputElement>('source-fmnist'),
  sourceFiles: el<HTMLInputElement>('source-files'),
  idxImages: el<HTMLInputElement>('idx-images'),
  idxLabels: el<HTMLInputElement>('idx-labels'),
  method: el<HTMLSelectElement>('method'),
  weightGrad: el<HTMLSelectElement>('weight-grad'),
  model: el<HTMLSelectElement>('model'),
  subset: el<HTMLInputElement>('subset'),
  batch: el<HTMLInputElement>('batch'),
  crop: el<HTMLInputElement>('crop'),
  epochs: el<HTMLInputElement>('epochs'),
  lr: el<HTMLInputElement>('lr'),
  start: el<HTMLButtonElement>('start'),
  pause: el<HTMLButtonElement>('pause'),
  stop: el<HTMLButtonElement>('stop'),
  eval: el<HTMLButtonElement>('eval'),
  download: el<HTMLButtonElement>('download'),
  upload: el<HTMLInputElement>('upload'),
  status: el<HTMLDivElement>('status'),
  adapter: el<HTMLElement>('adapter'),
  step: el<HTMLElement>('step'),
  epoch: el<HTMLElement>('epoch'),
  loss: el<HTMLElement>('loss'),
  ips: el<HTMLElement>('ips'),
  bits: el<HTMLElement>('bits'),
  lossChart: el<HTMLElement>('loss-chart') as unknown as SVGSVGElement,
  evalSettings: el<HTMLInputElement>('eval-settings'),
  evalTrain: el<HTMLInputElement>('eval-train'),
  evalTest: el<HTMLInputElement>('eval-test'),
  evalEpochs: el<HTMLInputElement>('eval-epochs'),
  exportSetting: el<HTMLInputElement>('export-setting'),
  exportOnnx: el<HTMLButtonElement>('export-onnx'),
  accChart: el<HTMLElement>('acc-chart') as unknown as SVGSVGElement,
};

function setStatus(text: string, isError = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', isError);
}
function fail(context: string, err: unknown): void {
  setStatus(`${context}: ${errorText(err)}`, true);
  console.error(`${context}:`, err);
}

function positiveInt(input: HTMLInputElement, name: string): number {
  const v = Number(input.value);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got '${input.value}'`);
  return v;
}

// ---- data ----------------------------------------------------------------------------------------

async function gunzipIfNeeded(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function idxPair(imageBytes: Uint8Array, labelBytes: Uint8Array, imagesName: string, labelsName: string): LabeledImages {
  const img = parseIdx(imageBytes, imagesName);
  const lab = parseIdx(labelBytes, labelsName);
  if (img.type !== 'u8' || img.dims.length !== 3) throw new DataFormatError(`${imagesName}: expected u8 images [N, H, W], got ${img.type} [${img.dims.join(', ')}]`);
  if (lab.type !== 'u8' || lab.dims.length !== 1) throw new DataFormatError(`${labelsName}: expected u8 labels [N], got ${lab.type} [${lab.dims.join(', ')}]`);
  if (lab.dims[0] !== img.dims[0]) throw new DataFormatError(`${labelsName}: ${lab.dims[0]} labels for ${img.dims[0]} images in ${imagesName}`);
  return { images: img.data as Uint8Array, labels: Int32Array.from(lab.data), count: img.dims[0], channels: 1, height: img.dims[1], width: img.dims[2] };
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} (the demo server serves the installed Fashion-MNIST; choose IDX files instead)`);
  return gunzipIfNeeded(new Uint8Array(await res.arrayBuffer()));
}

async function loadFashionMnist(split: 'train' | 't10k'): Promise<LabeledImages> {
  const images = `data/${split}-images-idx3-ubyte.gz`;
  const labels = `data/${split}-labels-idx1-ubyte.gz`;
  const [a, b] = await Promise.all([fetchBytes(images), fetchBytes(labels)]);
  return idxPair(a, b, images, labels);
}

async function loadChosenFiles(): Promise<LabeledImages> {
  const fi = ui.idxImages.files?.[0];
  const fl = ui.idxLabels.files?.[0];
  if (!fi || !fl) throw new Error('choose an IDX images file and an IDX labels file (gzip or plain)');
  const [a, b] = await Promise.all([fi.arrayBuffer(), fl.arrayBuffer()]);
  return idxPair(await gunzipIfNeeded(new Uint8Array(a)), await gunzipIfNeeded(new Uint8Array(b)), fi.name, fl.name);
}

/** The first `n` images of a set (views, no copy). */
function head(set: LabeledImages, n: number): ImageSet {
  const count = Math.min(n, set.count);
  const bytes = set.channels * set.height * set.width;
  return { ...set, images: set.images.subarray(0, count * bytes), labels: set.labels.subarray(0, count), count };
}
/** The last `n` images of a set (views, no copy). */
function tail(set: LabeledImages, n: number): ImageSet {
  const count = Math.min(n, set.count);
  const bytes = set.channels * set.height * set.width;
  const from = set.count - count;
  return { ...set, images: set.images.subarray(from * bytes), labels: set.labels.subarray(from), count };
}

const fmnist: { train?: Promise<LabeledImages>; test?: Promise<LabeledImages> } = {};
/** The training data of the chosen source and how to get evaluation images for it. */
async function trainingData(): Promise<{ train: LabeledImages; test: (n: number) => Promise<ImageSet>; name: string }> {
  if (ui.sourceFiles.checked) {
    const train = await loadChosenFiles();
    // No separate test file: evaluation tests on the last images of the chosen pair.
    return { train, test: async (n) => tail(train, n), name: ui.idxImages.files?.[0]?.name ?? 'IDX files' };
  }
  fmnist.train ??= loadFashionMnist('train');
  const train = await fmnist.train.catch((e: unknown) => { fmnist.train = undefined; throw e; });
  return {
    train,
    test: async (n) => {
      fmnist.test ??= loadFashionMnist('t10k');
      return head(await fmnist.test.catch((e: unknown) => { fmnist.test = undefined; throw e; }), n);
    },
    name: 'Fashion-MNIST',
  };
}

// ---- charts (inline SVG, drawn here) -------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';
function svgEl(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
const W = 520;
const H = 240;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

function niceTicks(lo: number, hi: number, n = 4): number[] {
  if (hi <= lo) return [lo];
  return Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
}

const losses: number[] = [];
let lossStepOffset = 0;
function drawLoss(): void {
  const svg = ui.lossChart;
  svg.replaceChildren();
  const pw = W - PAD.left - PAD.right;
  const ph = H - PAD.top - PAD.bottom;
  svg.append(svgEl('rect', { x: PAD.left, y: PAD.top, width: pw, height: ph, fill: '#fff', stroke: '#ccc' }));
  svg.dataset.points = String(losses.length);
  if (losses.length === 0) {
    svg.append(svgEl('text', { x: PAD.left + pw / 2, y: PAD.top + ph / 2, 'text-anchor': 'middle' }, 'no steps yet'));
    return;
  }
  let lo = Math.min(...losses);
  let hi = Math.max(...losses);
  if (hi - lo < 1e-6) { lo -= 0.05; hi += 0.05; }
  const n = losses.length;
  const x = (i: number) => PAD.left + (n === 1 ? pw / 2 : (i / (n - 1)) * pw);
  const y = (v: number) => PAD.top + (1 - (v - lo) / (hi - lo)) * ph;
  for (const t of niceTicks(lo, hi)) {
    svg.append(svgEl('line', { x1: PAD.left, x2: PAD.left + pw, y1: y(t), y2: y(t), stroke: '#eee' }));
    svg.append(svgEl('text', { x: PAD.left - 4, y: y(t) + 4, 'text-anchor': 'end' }, t.toFixed(Math.max(2, Math.min(5, 2 - Math.floor(Math.log10(hi - lo)))))));
  }
  svg.append(svgEl('text', { x: PAD.left, y: H - 8 }, `step ${lossStepOffset}`));
  svg.append(svgEl('text', { x: PAD.left + pw, y: H - 8, 'text-anchor': 'end' }, `step ${lossStepOffset + n - 1}`));
  // At most ~1000 drawn vertices: average buckets of a long run.
  const stride = Math.max(1, Math.ceil(n / 1000));
  const pts: string[] = [];
  for (let i = 0; i < n; i += stride) {
    const chunk = losses.slice(i, i + stride);
    const v = chunk.reduce((s, a) => s + a, 0) / chunk.length;
    pts.push(`${x(Math.min(n - 1, i + (chunk.length - 1) / 2)).toFixed(1)},${y(v).toFixed(1)}`);
  }
  svg.append(svgEl('polyline', { points: pts.join(' '), fill: 'none', stroke: '#1f77b4', 'stroke-width': 1.5 }));
  if (n <= 60) for (const p of pts) {
    const [cx, cy] = p.split(',');
    svg.append(svgEl('circle', { cx, cy, r: 2.5, fill: '#1f77b4' }));
  }
}

function drawAccuracy(results: Record<string, number>, title: string): void {
  const svg = ui.accChart;
  svg.replaceChildren();
  const pw = W - PAD.left - PAD.right;
  const ph = H - PAD.top - PAD.bottom;
  svg.append(svgEl('rect', { x: PAD.left, y: PAD.top, width: pw, height: ph, fill: '#fff', stroke: '#ccc' }));
  const names = Object.keys(results);
  svg.dataset.bars = String(names.length);
  const y = (v: number) => PAD.top + (1 - v / 100) * ph;
  for (const t of [0, 25, 50, 75, 100]) {
    svg.append(svgEl('line', { x1: PAD.left, x2: PAD.left + pw, y1: y(t), y2: y(t), stroke: '#eee' }));
    svg.append(svgEl('text', { x: PAD.left - 4, y: y(t) + 4, 'text-anchor': 'end' }, `${t}%`));
  }
  svg.append(svgEl('text', { x: PAD.left + pw - 4, y: PAD.top + 14, 'text-anchor': 'end' }, title));
  const slot = pw / Math.max(1, names.length);
  names.forEach((name, i) => {
    const v = results[name];
    const bx = PAD.left + i * slot + slot * 0.2;
    svg.append(svgEl('rect', { x: bx, y: y(v), width: slot * 0.6, height: PAD.top + ph - y(v), fill: name === 'fp' ? '#888' : '#2ca02c' }));
    svg.append(svgEl('text', { x: bx + slot * 0.3, y: y(v) - 4, 'text-anchor': 'middle' }, v.toFixed(1)));
    svg.append(svgEl('text', { x: bx + slot * 0.3, y: H - 10, 'text-anchor': 'middle' }, name));
  });
}

// ---- training ------------------------------------------------------------------------------------

type State = 'idle' | 'busy' | 'running' | 'paused' | 'stopped';
let state: State = 'idle';
let trainer: Trainer | null = null;
let data: Awaited<ReturnType<typeof trainingData>> | null = null;
let loop: Promise<void> | null = null;
/** Autotest: pause once the trainer has taken this many steps. */
let pauseAtStep: number | null = null;

function updateButtons(): void {
  ui.start.disabled = state === 'busy' || state === 'running';
  ui.start.textContent = state === 'paused' ? 'Resume' : 'Start';
  ui.pause.disabled = state !== 'running';
  ui.stop.disabled = state !== 'running' && state !== 'paused';
  const haveModel = trainer !== null && state !== 'busy';
  ui.eval.disabled = !haveModel;
  ui.download.disabled = !haveModel;
  ui.exportOnnx.disabled = !haveModel;
  ui.upload.disabled = state === 'busy';
}
function setState(s: State): void {
  state = s;
  updateButtons();
}

function configFromUi(): TrainConfig {
  const model = ui.model.value as ModelName;
  const crop = positiveInt(ui.crop, 'crop');
  return {
    ...DEFAULT_CONFIG,
    method: methodByName(ui.method.value).name,
    model,
    // The tiny model gets a narrower projector and predictor: it is the quick one.
    projDim: model === 'tiny' ? 128 : DEFAULT_CONFIG.projDim,
    predHidden: model === 'tiny' ? 32 : DEFAULT_CONFIG.predHidden,
    batchSize: positiveInt(ui.batch, 'batch size'),
    subset: positiveInt(ui.subset, 'subset'),
    cropSize: crop,
    epochs: positiveInt(ui.epochs, 'epochs'),
    lr: Number(ui.lr.value) || DEFAULT_CONFIG.lr,
    weightGrad: ui.weightGrad.value === 'ste' ? 'ste' : 'reference',
  };
}
function configToUi(c: TrainConfig): void {
  ui.method.value = c.method;
  ui.model.value = c.model;
  ui.batch.value = String(c.batchSize);
  ui.subset.value = String(c.subset);
  ui.crop.value = String(c.cropSize ?? 0);
  ui.epochs.value = String(c.epochs);
  ui.lr.value = String(c.lr);
  ui.weightGrad.value = c.weightGrad;
}

function showPosition(t: Trainer): void {
  ui.step.textContent = String(t.globalStep);
  ui.epoch.textContent = `${Math.min(t.epoch + 1, t.config.epochs)} / ${t.config.epochs}`;
}

/** The bit display of a full-precision method. */
function fullPrecision(t: Trainer): string {
  return `FP (${t.method.label})`;
}

function resetRun(t: Trainer): void {
  losses.length = 0;
  lossStepOffset = t.globalStep;
  drawLoss();
  ui.loss.textContent = '–';
  ui.ips.textContent = '–';
  ui.bits.textContent = t.method.quantized ? '–' : fullPrecision(t);
  showPosition(t);
}

async function runLoop(t: Trainer): Promise<void> {
  const times: number[] = [];
  try {
    while (state === 'running' && !t.done) {
      const r = t.step();
      const bits = r.bits;
      const loss = await r.loss.item(); // the readback waits for the step's GPU work
      r.loss.dispose();
      r.fp.dispose();
      r.quant?.dispose();
      times.push(performance.now());
      if (times.length > 11) times.shift();
      losses.push(loss);
      drawLoss();
      ui.loss.textContent = loss.toFixed(4);
      ui.bits.textContent = bits ? formatBits(bits) : fullPrecision(t);
      if (times.length >= 2) {
        const ips = (t.config.batchSize * (times.length - 1)) / ((times[times.length - 1] - times[0]) / 1000);
        ui.ips.textContent = ips.toFixed(1);
      }
      showPosition(t);
      setStatus(`training ${t.config.method} (${t.config.model}) on ${data?.name ?? 'data'}: step ${t.globalStep}`);
      if (pauseAtStep !== null && t.globalStep >= pauseAtStep) {
        pauseAtStep = null;
        setState('paused');
      }
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page handle input and paint
    }
    if (t.done && state === 'running') {
      setState('stopped');
      setStatus(`finished ${t.config.epochs} epochs (${t.globalStep} steps)`);
    } else if (state === 'paused') {
      setStatus(`paused at step ${t.globalStep}`);
    }
  } catch (err) {
    setState('stopped');
    fail('training failed', err);
  }
}

function startLoop(t: Trainer): void {
  setState('running');
  loop = runLoop(t);
}
async function haltLoop(next: State): Promise<void> {
  if (state === 'running') setState(next);
  else if (state === 'paused') setState(next);
  await loop;
  loop = null;
}

async function onStart(): Promise<void> {
  if (state === 'paused' && trainer && !trainer.done) {
    startLoop(trainer);
    return;
  }
  setState('busy');
  try {
    const config = configFromUi();
    setStatus('loading the data…');
    data = await trainingData();
    setStatus(`building the ${config.model} ResNet…`);
    trainer?.dispose();
    trainer = null;
    trainer = new Trainer(config, data.train);
    resetRun(trainer);
    setStatus(`training on ${Math.min(config.subset, data.train.count)} images of ${data.name} (the first step compiles the kernels)…`);
    startLoop(trainer);
  } catch (err) {
    setState(trainer ? 'stopped' : 'idle');
    fail('cannot start', err);
  }
}

async function onPause(): Promise<void> {
  await haltLoop('paused');
}

async function onStop(): Promise<void> {
  await haltLoop('stopped');
  setStatus(`stopped at step ${trainer?.globalStep ?? 0}; Start trains a fresh model, Evaluate and Download use this one`);
}

async function runEvaluation(opts: { settings: string[]; trainCount: number; testCount: number; epochs: number }): Promise<Record<string, number> | null> {
  const t = trainer;
  if (!t || !data) return null;
  const resume = state === 'running';
  const after: State = resume ? 'paused' : state;
  await haltLoop('paused');
  setState('busy');
  try {
    const train = head(data.train, opts.trainCount);
    const test = await data.test(opts.testCount);
    const t0 = performance.now();
    const r = await evaluate(t.net.encoder, train, test, {
      settings: opts.settings, epochs: opts.epochs, batchSize: Math.min(256, train.count),
      calibBatch: Math.min(256, train.count), featureBatch: 128,
      onProgress: (p) => {
        const what = p.stage === 'linear' ? `linear epoch ${p.epoch}/${p.epochs}` : p.stage === 'done' ? `${p.top1?.toFixed(1)}%` : p.stage;
        setStatus(`evaluating ${p.setting} (${p.index + 1}/${p.total}): ${what}`);
      },
    });
    drawAccuracy(r.results, `step ${t.globalStep}, ${train.count} train / ${test.count} test images`);
    setStatus(`evaluated at step ${t.globalStep} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ` +
      Object.entries(r.results).map(([k, v]) => `${k} ${v.toFixed(1)}%`).join(', '));
    return r.results;
  } catch (err) {
    fail('evaluation failed', err);
    return null;
  } finally {
    if (resume) startLoop(t);
    else setState(after);
  }
}

async function onEval(): Promise<void> {
  try {
    const settings = ui.evalSettings.value.split(',').map((s) => s.trim()).filter(Boolean);
    await runEvaluation({
      settings, trainCount: positiveInt(ui.evalTrain, 'eval train images'),
      testCount: positiveInt(ui.evalTest, 'eval test images'), epochs: positiveInt(ui.evalEpochs, 'linear epochs'),
    });
  } catch (err) {
    fail('cannot evaluate', err);
  }
}

/** The trainer's state as safetensors bytes (the CLI's checkpoint format). */
async function checkpointBytes(t: Trainer): Promise<Uint8Array> {
  const { tensors, metadata } = await t.checkpoint();
  return encodeSafetensors(tensors, metadata);
}

/** Offer `bytes` as a file download. */
function saveBytes(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const EXPORT_CALIBRATION = 256;

/** The current model at `settingText` as ONNX bytes: calibrated (quantized settings) on one
 * augmented batch of up to 256 training images with seed 0, as the evaluation and `ssql export`
 * calibrate. Training pauses meanwhile and resumes after. */
async function exportOnnx(settingText: string): Promise<{ bytes: Uint8Array; name: string; setting: string; activationQuantizers: number } | null> {
  const t = trainer;
  if (!t || !data) return null;
  const setting = parseSetting(settingText);
  if (setting.quantized && (setting.wbit > 8 || setting.abit > 8)) throw new RangeError(`${setting.name}: ONNX's 8-bit integer types hold 2..8 bits`);
  const resume = state === 'running';
  const after: State = resume ? 'paused' : state;
  await haltLoop('paused');
  setState('busy');
  try {
    const calibration = head(data.train, EXPORT_CALIBRATION);
    setStatus(`exporting at ${setting.name}…`);
    const model = await captureQuantizedModel(t.net.encoder, setting, {
      calibration, calibBatch: calibration.count, seed: 0, augmenter: makeAugmenter(calibration, 0),
    });
    const bytes = toOnnx(model, {
      normalization: normalization(calibration.channels),
      metadata: { source: `ssql-webgpu demo: ${t.config.method} ${t.config.model}, step ${t.globalStep}`, calibration: `one augmented batch of ${calibration.count} training images (seed 0)` },
    });
    const acts = [model.stem.act, ...model.blocks.flatMap((b) => [...b.path.map((u) => u.act), b.out])];
    return {
      bytes, name: `ssql-${t.config.method}-${t.config.model}-step${t.globalStep}-${setting.name}.onnx`, setting: setting.name,
      activationQuantizers: acts.filter((a) => a?.quant).length,
    };
  } finally {
    if (resume) startLoop(t);
    else setState(after);
  }
}

async function onExportOnnx(): Promise<void> {
  try {
    const r = await exportOnnx(ui.exportSetting.value);
    if (!r) return;
    saveBytes(r.bytes, r.name);
    setStatus(`ONNX model at ${r.setting}: ${(r.bytes.byteLength / 1024).toFixed(0)} KiB (${r.name})`);
  } catch (err) {
    fail('ONNX export failed', err);
  }
}

async function onDownload(): Promise<void> {
  const t = trainer;
  if (!t) return;
  const resume = state === 'running';
  await haltLoop('paused');
  try {
    const bytes = await checkpointBytes(t);
    saveBytes(bytes, `ssql-${t.config.method}-${t.config.model}-step${t.globalStep}.safetensors`);
    setStatus(`checkpoint at step ${t.globalStep}: ${(bytes.byteLength / 1024).toFixed(0)} KiB`);
  } catch (err) {
    fail('checkpoint failed', err);
  } finally {
    if (resume) startLoop(t);
  }
}

/** Replaces the trainer by one restored from checkpoint bytes (its config from the metadata);
 * training stays paused. The loss curve is kept up to the checkpoint's step when the checkpoint
 * continues the run shown (same method and model), else cleared. Returns the trainer and the
 * restore's notices (e.g. an old checkpoint keeping plain STE). */
async function restoreCheckpoint(bytes: Uint8Array, name: string): Promise<{ t: Trainer; notices: string[] }> {
  const { tensors, metadata } = decodeSafetensors(bytes, name);
  if (!metadata.config) throw new Error(`${name}: no training config in its metadata (not an ssql-webgpu checkpoint?)`);
  const config = { ...DEFAULT_CONFIG, ...(JSON.parse(metadata.config) as Partial<TrainConfig>) };
  const previous = trainer?.config;
  configToUi(config);
  setStatus('loading the data…');
  data = await trainingData();
  trainer?.dispose();
  trainer = null;
  const t = new Trainer(config, data.train);
  const { notes } = resumeDifferences(readConfig(metadata, name), t.config);
  t.restore(tensors, metadata, name);
  configToUi(t.config);
  trainer = t;
  const shown = t.globalStep - lossStepOffset;
  if (previous && previous.method === config.method && previous.model === config.model && shown >= 0 && shown <= losses.length) {
    losses.length = shown;
    drawLoss();
    showPosition(t);
  } else {
    resetRun(t);
  }
  return { t, notices: notes };
}

async function onUpload(): Promise<void> {
  const file = ui.upload.files?.[0];
  if (!file) return;
  await haltLoop('paused');
  setState('busy');
  try {
    const { t, notices } = await restoreCheckpoint(new Uint8Array(await file.arrayBuffer()), file.name);
    setState('paused');
    setStatus(`restored ${file.name}: ${t.config.method} ${t.config.model} at step ${t.globalStep}; Resume continues training${notices.map((n) => `. Note: ${n}`).join('')}`);
  } catch (err) {
    setState(trainer ? 'paused' : 'idle');
    fail('cannot restore the checkpoint', err);
  } finally {
    ui.upload.value = '';
  }
}

// ---- start-up -----------------------------------------------------------------------------------

ui.start.addEventListener('click', () => void onStart());
ui.pause.addEventListener('click', () => void onPause());
ui.stop.addEventListener('click', () => void onStop());
ui.eval.addEventListener('click', () => void onEval());
ui.download.addEventListener('click', () => void onDownload());
ui.exportOnnx.addEventListener('click', () => void onExportOnnx());
ui.upload.addEventListener('change', () => void onUpload());
for (const input of [ui.idxImages, ui.idxLabels]) input.addEventListener('change', () => { ui.sourceFiles.checked = true; });
for (const m of METHODS) {
  const isDefault = m.name === DEFAULT_CONFIG.method;
  ui.method.append(new Option(m.label, m.name, isDefault, isDefault));
}
drawLoss();

async function autotest(params: URLSearchParams): Promise<void> {
  const steps = Number(params.get('steps') ?? 3);
  ui.model.value = 'tiny';
  ui.subset.value = '64';
  ui.batch.value = '8';
  ui.crop.value = '12';
  ui.epochs.value = '10';
  pauseAtStep = steps;
  const t0 = performance.now();
  const report: Record<string, unknown> = {};
  try {
    await onStart();
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (state !== 'running' && state !== 'busy') { clearInterval(poll); resolve(); }
      }, 50);
    });
    await loop;
    report.trainMs = Math.round(performance.now() - t0);
    if (params.get('eval') === '1') {
      const r = await runEvaluation({ settings: ['fp', '4w4a'], trainCount: 64, testCount: 64, epochs: 2 });
      report.accuracy = r;
      report.accBars = Number(ui.accChart.dataset.bars ?? 0);
    }
    if (params.get('onnx') === '1') {
      // The export path without the download: the bytes and what the graph holds.
      const started = performance.now();
      const r = await exportOnnx('4w4a');
      if (r) {
        // ModelProto starts with field 1 (ir_version, varint): 0x08, then 7.
        report.onnx = { bytes: r.bytes.byteLength, setting: r.setting, name: r.name, activationQuantizers: r.activationQuantizers, head: [...r.bytes.subarray(0, 2)], ms: Math.round(performance.now() - started) };
      }
    }
    if (params.get('checkpoint') === '1' && trainer) {
      // The download and upload paths without the file dialogs: safetensors bytes out and back in.
      const bytes = await checkpointBytes(trainer);
      const { t } = await restoreCheckpoint(bytes, 'autotest.safetensors');
      setState('paused');
      setStatus(`autotest: ${t.globalStep} steps, checkpoint of ${(bytes.byteLength / 1024).toFixed(0)} KiB restored`);
      report.checkpoint = { bytes: bytes.byteLength, restoredStep: t.globalStep };
    }
  } catch (err) {
    errors.push(`autotest: ${errorText(err)}`);
  }
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the charts paint before the screenshot
  await postReport(report, t0);
}

/** Autotest: what the page shows, to the test's server. */
async function postReport(report: Record<string, unknown>, t0: number): Promise<void> {
  Object.assign(report, {
    state,
    steps: trainer?.globalStep ?? 0,
    points: Number(ui.lossChart.dataset.points ?? 0),
    polylines: ui.lossChart.querySelectorAll('polyline').length,
    bits: ui.bits.textContent,
    ips: ui.ips.textContent,
    loss: ui.loss.textContent,
    status: ui.status.textContent,
    errors,
    ms: Math.round(performance.now() - t0),
  });
  await fetch('report', { method: 'POST', body: JSON.stringify(report), headers: { 'content-type': 'application/json' } });
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const isAutotest = params.get('autotest') === '1';
  updateButtons();
  ui.start.disabled = true;
  try {
    if (!('gpu' in navigator)) throw new Error('this browser has no WebGPU (navigator.gpu); use a recent Chrome/Chromium, Edge or Firefox with WebGPU on');
    const a = (await initWebDevice()).adapter;
    ui.adapter.textContent = `${a.vendor || 'unknown'} ${a.architecture}${a.isFallbackAdapter ? ' (fallback)' : ''}`;
  } catch (err) {
    fail('no WebGPU device', err);
    if (isAutotest) await postReport({}, performance.now());
    return;
  }
  updateButtons();
  setStatus('ready: choose the data and the model, then Start');
  if (isAutotest) await autotest(params);
}

void main();
