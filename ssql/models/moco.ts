// MoCo v2 (and SSQL on MoCo v2, docs/method.md#moco-v2-variant), as the reference code builds it
// (megvii-research/SSQL-ECCV2022 `utils/ssl_algorithms/moco.py`, `Qmoco.py`): a query encoder
// (ResNet + MoCo v2's MLP head Linear-ReLU-Linear, both linears with bias, registered as `fc`),
// trained by SGD; a key encoder of the same architecture that is never trained: it starts as a
// copy of the query encoder and follows it as an exponential moving average of the parameters
// (momentum m, 0.999 in the reference config), k <- m k + (1 - m) q, after every optimizer step;
// and a queue of K negative keys (4096 in the reference config), unit vectors of dimension D
// (256), stored as the columns of a [D, K] buffer with a write pointer, both on the GPU.
//
// State-dict keys: `encoder.*` (the query encoder: backbone as SimSiamNet's, so evaluation reads
// it unchanged, and the head `encoder.fc.0.*`, `encoder.fc.2.*`, the reference's names),
// `key_encoder.*` (parameters and its own BN running statistics), `queue` [D, K] and
// `queue_ptr` (int64 [1] in the file, as PyTorch's). The key encoder's BN layers stay in train
// mode and keep their own running statistics; the EMA covers parameters only, matched by name
// (the reference zips `encoder_q.parameters()` with `encoder_k.parameters()`).
//
// Quantization (SSQL on MoCo): the query encoder's context follows the step (an FP pass that
// records the ranges, then a quantized pass); the head's linears are 8-bit weights with FP
// outputs (the reference config's BIT_CONFIG: fc.0 and fc.2 `w 8, a 0`); the key encoder has its
// own context, always 'off'.
//
// Order relative to the reference: `moco.py` applies the EMA inside the forward pass before the
// keys are computed, and enqueues the keys after the logits; the trainer calls `afterStep`
// (EMA, then enqueue) right after the optimizer step instead. The query weights do not change
// between the end of one step and the next step's forward, so every step sees the same key
// encoder and queue either way (the reference's first EMA averages the copy with itself).
// The reference shuffles the key batch across GPUs before the key encoder ("shuffle BN"): with
// one device, BN over the whole batch does not depend on the order, so there is nothing to
// shuffle here.
import { Module, ReLU, Rng, Sequential, Tensor, emaUpdate, enqueueColumns, keep } from '../../engine/index.ts';
import type { Random } from '../../engine/index.ts';
import { QLinear, QuantContext } from './quant.ts';
import type { ResNetConfig } from './resnet.ts';
import { ResNet } from './resnet.ts';

export interface MocoConfig {
  backbone: ResNetConfig;
  /** The MLP head's hidden width (2048 in the reference config; `projDim` of the CLI). */
  hidden: number;
  /** Key dimension D (256 in the reference config). */
  dim: number;
  /** Negatives in the queue, K (4096 in the reference config). */
  queueSize: number;
  /** The InfoNCE temperature T (0.2 in the reference config). */
  temperature: number;
}

/** MoCo v2's projection head: Linear(feature, hidden) ReLU Linear(hidden, dim), biases on,
 * weights 8-bit under quantization. */
export function mocoHead(ctx: QuantContext, inDim: number, hidden: number, dim: number, random: Random): Sequential {
  return new Sequential(
    new QLinear(ctx, 'w8', inDim, hidden, { random }), new ReLU(),
    new QLinear(ctx, 'w8', hidden, dim, { random }),
  );
}

/** A constant generator for the key encoder's throwaway initialization (it is overwritten by
 * the copy), so building it draws nothing from the caller's seeded generator. */
const constant: Random = () => 0.5;

function positiveInteger(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`MoCo: ${what} must be a positive integer, got ${v}`);
  return v;
}

/** Columns of a [dim, K] matrix drawn from N(0, 1) and scaled to unit length (the reference's
 * `normalize(randn(dim, K), dim=0)`), from a generator seeded by one draw of `random`. */
function randomUnitColumns(dim: number, K: number, random: Random): Float32Array {
  const rng = new Rng(Math.floor(random() * 2 ** 32));
  const v = new Float64Array(dim * K);
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  const out = new Float32Array(dim * K);
  for (let k = 0; k < K; k++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += v[d * K + k] ** 2;
    const norm = Math.max(Math.sqrt(s), 1e-12);
    for (let d = 0; d < dim; d++) out[d * K + k] = v[d * K + k] / norm;
  }
  return out;
}

export class MocoNet extends Module {
  /** The query encoder's quantization context (SSQL on MoCo calibrates and quantizes it). */
  readonly ctx: QuantContext;
  /** The key encoder's own context: never leaves 'off'. */
  readonly keyCtx: QuantContext;
  readonly encoder: ResNet;
  /** MoCo has no predictor. */
  readonly predictor = null;
  readonly keyEncoder: ResNet;
  /** [dim, K]: one key per column. */
  readonly queue: Tensor;
  /** i32 [1]: the column the next key goes to. */
  readonly queuePtr: Tensor;
  /** [key, query] parameter pairs, matched by name. */
  private readonly pairs: [Tensor, Tensor][];
  /** The last step's keys, enqueued by `afterStep` (kept out of scopes until then). */
  private pendingKeys: Tensor | null = null;

  constructor(readonly config: MocoConfig, random: Random) {
    super();
    const { backbone, hidden, dim, queueSize, temperature } = config;
    for (const [what, v] of [['the head width', hidden], ['the key dimension', dim], ['the queue size', queueSize]] as const) positiveInteger(what, v);
    if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`MoCo: the temperature must be positive, got ${temperature}`);
    this.queue = this.registerBuffer('queue', Tensor.fromArray(randomUnitColumns(dim, queueSize, random), [dim, queueSize]))!;
    this.queuePtr = this.registerBuffer('queue_ptr', Tensor.fromArray([0], [1], { dtype: 'i32' }))!;
    this.ctx = new QuantContext();
    this.encoder = this.registerModule('encoder', new ResNet(this.ctx, backbone, random));
    this.encoder.setHead(mocoHead(this.ctx, this.encoder.featureDim, hidden, dim, random));
    this.keyCtx = new QuantContext();
    this.keyEncoder = this.registerModule('key_encoder', new ResNet(this.keyCtx, backbone, constant));
    this.keyEncoder.setHead(mocoHead(this.keyCtx, this.keyEncoder.featureDim, hidden, dim, constant));
    this.restartMomentumEncoder();
    const query = new Map(this.encoder.namedParameters());
    this.pairs = this.keyEncoder.namedParameters().map(([name, k]) => {
      k.requiresGrad = false;
      const q = query.get(name);
      if (!q) throw new Error(`MocoNet: the query encoder lacks '${name}'`);
      return [k, q];
    });
  }

  get dim(): number {
    return this.config.dim;
  }

  get queueSize(): number {
    return this.config.queueSize;
  }

  /** Copy the query encoder (parameters and BN buffers) into the key encoder. */
  restartMomentumEncoder(): void {
    this.keyEncoder.loadStateDict(this.encoder.stateDict());
  }

  /** What SGD trains: the query encoder (backbone and head). */
  trainableParameters(): Tensor[] {
    return this.encoder.parameters();
  }

  /** The query encoder's output (before normalization). */
  forward(x: Tensor): Tensor {
    return this.encoder.forward(x);
  }

  /** The key encoder's output, full precision (its context is never anything but 'off'; call
   * under noGrad). */
  keyForward(x: Tensor): Tensor {
    return this.keyEncoder.forward(x);
  }

  /** Hold the step's keys [N, dim] until `afterStep` enqueues them (a previous unconsumed set
   * is dropped). */
  setPendingKeys(keys: Tensor): void {
    if (keys.ndim !== 2 || keys.shape[1] !== this.dim) throw new RangeError(`MocoNet: keys must be [N, ${this.dim}], got ${keys.describe()}`);
    if (keys.shape[0] > this.queueSize) throw new RangeError(`MocoNet: a batch of ${keys.shape[0]} does not fit the queue of ${this.queueSize} negatives (--moco-queue)`);
    this.pendingKeys?.dispose();
    this.pendingKeys = keep(keys);
  }

  /** After the optimizer step: k <- m k + (1 - m) q for every parameter (four a dispatch),
   * then the step's keys into the queue at the pointer. On the GPU, no readback. */
  afterStep(momentum: number): void {
    emaUpdate(this.pairs.map(([k]) => k), this.pairs.map(([, q]) => q), momentum);
    if (this.pendingKeys) {
      enqueueColumns(this.queue, this.queuePtr, this.pendingKeys);
      this.pendingKeys.dispose();
      this.pendingKeys = null;
    }
  }

  /** Release both quantization contexts' observers and unconsumed keys (the state tensors are
   * disposed by the owner). */
  disposeContexts(): void {
    this.ctx.dispose();
    this.keyCtx.dispose();
    this.pendingKeys?.dispose();
    this.pendingKeys = null;
  }
}
