// The SimSiam/SSQL augmentations (docs/method.md#training-recipe) as one batched GPU kernel (shaders/augment.wgsl),
// seeded and reproducible. Platform independent.
//
// Per view and image, following torchvision's transforms in the reference pipeline order:
//   RandomResizedCrop(outSize, scale, ratio)   torchvision's sampler (10 tries, then the centre
//                                              crop fallback), bilinear, align_corners=False
//   RandomApply(ColorJitter(b, c, s, h), p)    sub-ops in a random order per image; 1-channel
//                                              images get brightness and contrast only
//   RandomGrayscale(p)                         RGB only, grey replicated to 3 channels
//   RandomHorizontalFlip(p)
//   ToTensor + Normalize(mean, std)
// Random parameters are drawn on the CPU from the augmenter's own generator (engine/random.ts, its
// state can be saved and restored) and uploaded as 16 floats per image; nothing is read back.
//
// Differences from torchvision on PIL images: values stay float between steps (PIL rounds to
// u8 after each step), grey is 0.299 R + 0.587 G + 0.114 B (PIL's weights; torchvision's tensor
// path uses 0.2989), and shrinking a crop uses plain bilinear without antialiasing (the recipe's
// settings never shrink: crops are at most the source size, which equals the output size).
import source from '../../shaders/augment.wgsl';
import { Rng, Tensor, declareKernels, engine, launch } from '../../engine/index.ts';

export type Range = readonly [number, number];

export interface AugmentOptions {
  channels: 1 | 3;
  /** Source image size. */
  height: number;
  width: number;
  /** Output height = width (default: `height`). */
  outSize?: number;
  /** Per channel, applied after scaling to [0, 1]. */
  mean: readonly number[];
  std: readonly number[];
  /** RandomResizedCrop area fraction (default [0.2, 1.0]) and aspect ratio (default [3/4, 4/3]). */
  scale?: Range;
  ratio?: Range;
  /** Horizontal flip probability (default 0.5). */
  flipP?: number;
  /** Probability of applying ColorJitter (default 0.8). */
  jitterP?: number;
  /** ColorJitter strengths as in torchvision: v -> factor in [max(0, 1 - v), 1 + v] (hue: [-v, v]),
   * or an explicit [min, max]. 0 (or [1, 1]; hue [0, 0]) disables the sub-op. Defaults 0.4, 0.4, 0.4, 0.1. */
  brightness?: number | Range;
  contrast?: number | Range;
  saturation?: number | Range;
  hue?: number | Range;
  /** RandomGrayscale probability (default 0.2; ignored for 1 channel). */
  grayscaleP?: number;
  seed?: number;
}

/** ColorJitter sub-op ids, as they appear in `AugmentParams.order`. */
export const JitterOp = { brightness: 0, contrast: 1, saturation: 2, hue: 3 } as const;

/** The random parameters of one image of one view. */
export interface AugmentParams {
  /** Crop box in source pixels. */
  top: number;
  left: number;
  height: number;
  width: number;
  flip: boolean;
  /** Whether ColorJitter was applied. */
  jitter: boolean;
  /** The sub-ops in the order applied (`JitterOp` ids); disabled sub-ops are left out. */
  order: number[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  grayscale: boolean;
}

/** Images uploaded to the GPU: u8 pixels packed four to a u32 word. */
export class ImageBatch {
  constructor(
    readonly data: Tensor,
    readonly count: number,
    readonly channels: number,
    readonly height: number,
    readonly width: number,
  ) {}

  dispose(): void {
    this.data.dispose();
  }
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision ColorJitter._check_input; null when the sub-op is disabled. */
function jitterRange(v: number | Range, name: string, center: number, bound: Range): Range | null {
  let r: Range;
  if (typeof v === 'number') {
    if (!(v >= 0)) throw new RangeError(`Augmenter: ${name} must be non-negative, got ${v}`);
    r = center === 1 ? [Math.max(0, 1 - v), 1 + v] : [-v, v];
  } else {
    r = v;
  }
  if (!(r[0] <= r[1]) || r[0] < bound[0] || r[1] > bound[1]) {
    throw new RangeError(`Augmenter: ${name} range [${r.join(', ')}] must be ordered and within [${bound.join(', ')}]`);
  }
  return r[0] === center && r[1] === center ? null : r;
}

function probability(v: number, name: string): number {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`Augmenter: ${name} must be a probability in [0, 1], got ${v}`);
  return v;
}

const augmentKernels = declareKernels({
  name: 'augment',
  source,
  params: { srcH: 'u32', srcW: 'u32', outH: 'u32', outW: 'u32', count: 'u32', mean: 'vec4<f32>', stdev: 'vec4<f32>' },
  defines: { CHANNELS: 'u32', WG: 'u32', QPER: 'u32', NARROW: 'bool', ALIGNED: 'bool' },
  entryPoints: { main: { inputs: { Src: 'u32', Prm: 'f32' }, outputs: { Out: 'f32' } } },
});

const PARAMS_PER_IMAGE = 32;
const PREFERRED_QUADS = 32;

/** The kernel's program for one image (shaders/augment.wgsl): the crop, contrast and grayscale,
 * then per phase (the jitter ops before contrast, those after it) the (a, b) of
 * v -> clamp01(a v + b grey(v)) for up to two ops before hue and two after it, and the counts. */
function packProgram(p: AugmentParams, out: Float32Array, o: number): void {
  const ops = p.jitter ? p.order : [];
  const cpos = ops.indexOf(JitterOp.contrast);
  const phases = cpos < 0 ? [ops, []] : [ops.slice(0, cpos), ops.slice(cpos + 1)];
  out.set([p.top, p.left, p.height, p.width, p.flip ? 1 : 0, p.contrast, cpos < 0 ? 0 : 1, p.grayscale ? 1 : 0], o);
  phases.forEach((phase, k) => {
    const hue = phase.indexOf(JitterOp.hue);
    const before = hue < 0 ? phase : phase.slice(0, hue);
    const after = hue < 0 ? [] : phase.slice(hue + 1);
    if (before.length > 2 || after.length > 2) throw new Error(`packProgram: order [${ops.join(', ')}] does not fit the kernel's slots`);
    const coefficients = (op: number) => (op === JitterOp.brightness ? [p.brightness, 0] : [p.saturation, 1 - p.saturation]);
    before.forEach((op, s) => out.set(coefficients(op), o + 8 + 8 * k + 2 * s));
    after.forEach((op, s) => out.set(coefficients(op), o + 12 + 8 * k + 2 * s));
    out.set([before.length, hue < 0 ? 0 : 1, p.hue, after.length], o + 24 + 4 * k);
  });
}

export class Augmenter {
  readonly channels: 1 | 3;
  readonly height: number;
  readonly width: number;
  readonly outSize: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly scale: Range;
  readonly ratio: Range;
  readonly flipP: number;
  readonly jitterP: number;
  readonly grayscaleP: number;
  private readonly ranges: (Range | null)[];
  private readonly rng: Rng;
  private last: AugmentParams[] = [];

  constructor(o: AugmentOptions) {
    if (o.channels !== 1 && o.channels !== 3) throw new RangeError(`Augmenter: channels must be 1 or 3, got ${String(o.channels)}`);
    this.channels = o.channels;
    for (const [k, v] of [['height', o.height], ['width', o.width], ['outSize', o.outSize ?? o.height]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new RangeError(`Augmenter: ${k} must be a positive integer, got ${v}`);
    }
    this.height = o.height;
    this.width = o.width;
    this.outSize = o.outSize ?? o.height;
    if (o.mean.length !== o.channels || o.std.length !== o.channels) {
      throw new RangeError(`Augmenter: mean and std need ${o.channels} values each, got ${o.mean.length} and ${o.std.length}`);
    }
    if (o.std.some((s) => !(s !== 0 && Number.isFinite(s)))) throw new RangeError(`Augmenter: std must be finite and non-zero, got [${o.std.join(', ')}]`);
    this.mean = [...o.mean];
    this.std = [...o.std];
    this.scale = o.scale ?? [0.2, 1.0];
    this.ratio = o.ratio ?? [3 / 4, 4 / 3];
    if (!(this.scale[0] > 0 && this.scale[0] <= this.scale[1])) throw new RangeError(`Augmenter: scale must satisfy 0 < min <= max, got [${this.scale.join(', ')}]`);
    if (!(this.ratio[0] > 0 && this.ratio[0] <= this.ratio[1])) throw new RangeError(`Augmenter: ratio must satisfy 0 < min <= max, got [${this.ratio.join(', ')}]`);
    this.flipP = probability(o.flipP ?? 0.5, 'flipP');
    this.jitterP = probability(o.jitterP ?? 0.8, 'jitterP');
    this.grayscaleP = probability(o.grayscaleP ?? 0.2, 'grayscaleP');
    const inf = Number.POSITIVE_INFINITY;
    this.ranges = [
      jitterRange(o.brightness ?? 0.4, 'brightness', 1, [0, inf]),
      jitterRange(o.contrast ?? 0.4, 'contrast', 1, [0, inf]),
      o.channels === 3 ? jitterRange(o.saturation ?? 0.4, 'saturation', 1, [0, inf]) : null,
      o.channels === 3 ? jitterRange(o.hue ?? 0.1, 'hue', 0, [-0.5, 0.5]) : null,
    ];
    this.rng = new Rng(o.seed ?? 0);
  }

  /** The generator's state (4 u32 words), for checkpoints. */
  state(): number[] {
    return this.rng.state();
  }

  setState(state: readonly number[]): void {
    this.rng.setState(state);
  }

  /** Upload the first `count` images of `images` (N x C x H x W bytes). */
  uploadBatch(images: Uint8Array, count: number): ImageBatch {
    const imageBytes = this.channels * this.height * this.width;
    if (!Number.isInteger(count) || count <= 0) throw new RangeError(`uploadBatch: count must be a positive integer, got ${count}`);
    const bytes = count * imageBytes;
    if (images.length < bytes) {
      throw new RangeError(`uploadBatch: ${count} images of ${this.channels}x${this.height}x${this.width} need ${bytes} bytes, got ${images.length}`);
    }
    const words = Math.ceil(bytes / 4);
    let data = images.subarray(0, bytes);
    if (bytes % 4 !== 0 || data.byteOffset % 4 !== 0) {
      const padded = new Uint8Array(words * 4);
      padded.set(data);
      data = padded;
    }
    const t = Tensor.empty([words], 'u32');
    engine().write(t.buffer, data);
    return new ImageBatch(t, count, this.channels, this.height, this.width);
  }

  /** Draw the parameters of one view of `count` images (advances the generator). */
  sample(count: number): AugmentParams[] {
    const out: AugmentParams[] = [];
    for (let i = 0; i < count; i++) out.push(this.sampleOne());
    return out;
  }

  /** One augmented view: f32 [N, C, outSize, outSize]. Each call draws new parameters. */
  views(batch: ImageBatch): Tensor {
    const params = this.sample(batch.count);
    this.last = params;
    return this.apply(batch, params);
  }

  /** The parameters drawn by the last `views()` call, one per image. */
  lastParams(): readonly AugmentParams[] {
    return this.last;
  }

  /** Augment with given parameters (one per image); does not touch the generator. */
  apply(batch: ImageBatch, params: readonly AugmentParams[]): Tensor {
    this.checkBatch(batch);
    if (params.length !== batch.count) throw new RangeError(`Augmenter.apply: ${params.length} parameter sets for ${batch.count} images`);
    const packed = new Float32Array(batch.count * PARAMS_PER_IMAGE);
    params.forEach((p, n) => {
      if (!(Number.isInteger(p.top) && Number.isInteger(p.left) && p.height >= 1 && p.width >= 1 && p.top >= 0 && p.left >= 0
        && p.top + p.height <= this.height && p.left + p.width <= this.width && Number.isInteger(p.height) && Number.isInteger(p.width))) {
        throw new RangeError(`Augmenter.apply: crop box (top ${p.top}, left ${p.left}, ${p.height}x${p.width}) of image ${n} is outside the ${this.height}x${this.width} source`);
      }
      packProgram(p, packed, n * PARAMS_PER_IMAGE);
    });
    return this.run(batch, packed, this.outSize, this.outSize, 'augment');
  }

  /** Evaluation path: no augmentation, just /255 and normalize: f32 [N, C, height, width]. */
  normalizeOnly(batch: ImageBatch): Tensor {
    this.checkBatch(batch);
    const packed = new Float32Array(batch.count * PARAMS_PER_IMAGE);
    const identity: AugmentParams = { top: 0, left: 0, height: this.height, width: this.width, flip: false, jitter: false, order: [], brightness: 1, contrast: 1, saturation: 1, hue: 0, grayscale: false };
    for (let n = 0; n < batch.count; n++) packProgram(identity, packed, n * PARAMS_PER_IMAGE);
    return this.run(batch, packed, this.height, this.width, 'normalize');
  }

  private run(batch: ImageBatch, packed: Float32Array, outH: number, outW: number, what: string): Tensor {
    if (batch.count > 65535) throw new RangeError(`Augmenter: at most 65535 images per call, got ${batch.count}`);
    const { wg, quadsPer } = kernelShape(outH * Math.ceil(outW / 4));
    const perChannel = (v: readonly number[]) => [0, 1, 2, 3].map((c) => (c < this.channels ? v[c] : 0));
    const prm = Tensor.fromArray(packed, [packed.length]);
    const out = Tensor.empty([batch.count, this.channels, outH, outW]);
    launch(augmentKernels.main, {
      label: `augment (${what}) ${batch.count}x${this.channels}x${this.height}x${this.width} -> ${outH}x${outW}`,
      inputs: { Src: batch.data, Prm: prm },
      outputs: { Out: out },
      params: { srcH: this.height, srcW: this.width, outH, outW, count: batch.count, mean: perChannel(this.mean), stdev: perChannel(this.std) },
      defines: { CHANNELS: this.channels, WG: wg, QPER: quadsPer, NARROW: outW >= this.width, ALIGNED: outW % 4 === 0 },
      workgroups: [batch.count, 1, 1],
    });
    prm.dispose();
    return out;
  }

  private checkBatch(batch: ImageBatch): void {
    if (batch.channels !== this.channels || batch.height !== this.height || batch.width !== this.width) {
      throw new RangeError(`Augmenter: batch of ${batch.channels}x${batch.height}x${batch.width} images, this augmenter takes ${this.channels}x${this.height}x${this.width}`);
    }
  }

  private sampleOne(): AugmentParams {
    const r = this.rng;
    const [top, left, height, width] = this.sampleCrop();
    // RandomApply(ColorJitter) (torchvision: applied unless p < rand; the same up to a null event).
    const jitter = r.next() < this.jitterP;
    const factors = [1, 1, 1, 0];
    let order: number[] = [];
    if (jitter) {
      const perm = r.shuffle([0, 1, 2, 3]); // torch.randperm(4)
      this.ranges.forEach((range, k) => {
        if (range) factors[k] = r.uniform(range[0], range[1]);
      });
      order = perm.filter((k) => this.ranges[k] !== null);
    }
    const grayscale = r.next() < this.grayscaleP && this.channels === 3;
    const flip = r.next() < this.flipP;
    return {
      top, left, height, width, flip, jitter, order,
      brightness: factors[0], contrast: factors[1], saturation: factors[2], hue: factors[3], grayscale,
    };
  }

  /** torchvision RandomResizedCrop.get_params: [top, left, height, width]. */
  private sampleCrop(): [number, number, number, number] {
    const H = this.height;
    const W = this.width;
    const area = H * W;
    const logLo = Math.log(this.ratio[0]);
    const logHi = Math.log(this.ratio[1]);
    for (let attempt = 0; attempt < 10; attempt++) {
      const target = area * this.rng.uniform(this.scale[0], this.scale[1]);
      const aspect = Math.exp(this.rng.uniform(logLo, logHi));
      const w = roundHalfEven(Math.sqrt(target * aspect));
      const h = roundHalfEven(Math.sqrt(target / aspect));
      if (w > 0 && w <= W && h > 0 && h <= H) {
        const i = this.rng.int(0, H - h + 1);
        const j = this.rng.int(0, W - w + 1);
        return [i, j, h, w];
      }
    }
    const inRatio = W / H;
    let w: number;
    let h: number;
    if (inRatio < this.ratio[0]) {
      w = W;
      h = roundHalfEven(w / this.ratio[0]);
    } else if (inRatio > this.ratio[1]) {
      h = H;
      w = roundHalfEven(h * this.ratio[1]);
    } else {
      w = W;
      h = H;
    }
    return [Math.floor((H - h) / 2), Math.floor((W - w) / 2), h, w];
  }
}

/** Workgroup size and quads (4 output pixels of a row) per invocation: the smallest workgroup
 * of 8, 16, ..., 256 (the browser's limit) that leaves each invocation at most PREFERRED_QUADS,
 * else 256 (the kernel keeps no per-quad state in registers, so any size fits). Small
 * workgroups run this kernel fastest on both adapters, since each barrier there switches
 * between the workgroup's SIMD groups: one view of 64x1x28x28 (196 quads an image) took
 * 0.18-0.29x the previous kernel's time in Chromium with workgroups of 8, 0.62-0.99x with 64
 * (GPU time, interleaved in one page, busy machine); on lavapipe 8 and 16 were alike, 4 (half
 * its 8 lanes) slower. */
function kernelShape(quads: number): { wg: number; quadsPer: number } {
  for (let wg = 8; wg < 256; wg *= 2) {
    if (Math.ceil(quads / wg) <= PREFERRED_QUADS) return { wg, quadsPer: Math.ceil(quads / wg) };
  }
  return { wg: 256, quadsPer: Math.ceil(quads / 256) };
}
