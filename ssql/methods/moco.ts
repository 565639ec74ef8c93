// MoCo v2 and SSQL on MoCo v2, as the reference code trains them (megvii-research/SSQL-ECCV2022
// `moco.py`, `Qmoco.py`, config `resnet18_ssql_moco_cifar.yaml`): their losses and registry
// entries. The network (ssql/models/moco.ts) holds the momentum key encoder and the queue.
//
// One step, with the query view x1 and the key view x2 (the reference's im_q, im_k; the loss is
// not symmetrized):
//   q = normalize(f_q(x1)), k = normalize(f_k(x2)) (no gradient), rows scaled to unit length
//   logits = [q.k, q Queue] / T   ([N, 1 + K]: the positive first, then the K queued negatives)
//   L = cross-entropy(logits, label 0)
// SSQL on MoCo quantizes only the query: an FP query pass that records the activation ranges,
// then a query pass with weights and activations fake-quantized at the step's bit pair with those
// ranges; both against the same FP keys and queue: L = (L_q + L_fp) / 2. BN order: FP query,
// quantized query, then the key encoder. After the optimizer step the key encoder moves by EMA
// and the keys go into the queue (`MocoNet.afterStep`).
import { Tensor, concat, crossEntropy, div, divScalar, matmul, maximum, mul, mulScalar, add, noGrad, sqrt, sum } from '../../engine/index.ts';
import { MocoNet } from '../models/moco.ts';
import type { Random } from '../../engine/index.ts';
import type { SimSiamConfig } from '../models/resnet.ts';
import { defineMethod } from './method.ts';
import type { BitPair, MethodSettings, StepLosses } from './method.ts';

/** The reference config's values (SSL.SETTING: DIM 256, MOCO_K 4096, T 0.2, MOMENTUM 0.999). */
export const MOCO_DEFAULTS = { emaMomentum: 0.999, mocoDim: 256, mocoQueue: 4096, mocoTemperature: 0.2 } as const;

/** Rows of `x` [N, D] scaled to unit length: x / max(|x|, 1e-12) (PyTorch's F.normalize). */
export function normalizeRows(x: Tensor): Tensor {
  const norm = sqrt(sum(mul(x, x), 1, { keepDims: true }));
  const eps = Tensor.fromArray([1e-12], [1]);
  return div(x, maximum(norm, eps));
}

/** InfoNCE as MoCo computes it: cross-entropy of [q.k, q Queue] / T against label 0.
 * `q`, `k` [N, D] unit rows (k constant), `queue` [D, K] unit columns (constant). */
export function infoNce(q: Tensor, k: Tensor, queue: Tensor, temperature: number): Tensor {
  const positive = sum(mul(q, k), 1, { keepDims: true });
  const negatives = matmul(q, queue);
  const logits = divScalar(concat([positive, negatives], 1), temperature);
  return crossEntropy(logits, Tensor.zeros([q.shape[0]], { dtype: 'i32' }));
}

/** The keys of the key view: FP, no gradient; held by the net for the queue. */
function keys(net: MocoNet, x2: Tensor): Tensor {
  const k = noGrad(() => normalizeRows(net.keyForward(x2)));
  net.setPendingKeys(k);
  return k;
}

export function mocoLosses(net: MocoNet, x1: Tensor, x2: Tensor): StepLosses {
  const q = net.ctx.withQuantization({ mode: 'off' }, () => normalizeRows(net.encoder.forward(x1)));
  const loss = infoNce(q, keys(net, x2), net.queue, net.config.temperature);
  return { loss, fp: loss, quant: null };
}

export function ssqlMocoLosses(net: MocoNet, x1: Tensor, x2: Tensor, bits: BitPair): StepLosses {
  const temperature = net.config.temperature;
  const ctx = net.ctx;
  ctx.newStep();
  const qFp = ctx.withQuantization({ mode: 'calibrate' }, () => normalizeRows(net.encoder.forward(x1)));
  const qQuant = ctx.withQuantization({ mode: 'quantize', wbit: bits.wbit, abit: bits.abit }, () => normalizeRows(net.encoder.forward(x1)));
  const k = keys(net, x2);
  const fp = infoNce(qFp, k, net.queue, temperature);
  const quant = infoNce(qQuant, k, net.queue, temperature);
  return { loss: mulScalar(add(quant, fp), 0.5), fp, quant };
}

/** What both MoCo methods share: the network (head width = projDim), SGD on the query encoder
 * only, and after each optimizer step the EMA of the key encoder and the enqueue. */
const mocoNetwork = {
  settings: { ...MOCO_DEFAULTS },
  createNet: (config: SimSiamConfig, random: Random, settings: MethodSettings) => new MocoNet({
    backbone: config.backbone, hidden: config.projDim,
    dim: settings.mocoDim ?? MOCO_DEFAULTS.mocoDim, queueSize: settings.mocoQueue ?? MOCO_DEFAULTS.mocoQueue,
    temperature: settings.mocoTemperature ?? MOCO_DEFAULTS.mocoTemperature,
  }, random),
  trainableParameters: (net: MocoNet) => net.trainableParameters(),
  afterStep: (net: MocoNet, settings: MethodSettings) => {
    const m = settings.emaMomentum ?? MOCO_DEFAULTS.emaMomentum;
    if (!(m >= 0 && m <= 1)) throw new RangeError(`MoCo: the key encoder's momentum must be in [0, 1], got ${m}`);
    net.afterStep(m);
  },
};

export const MOCO_V2 = defineMethod({
  ...mocoNetwork,
  name: 'mocov2',
  label: 'MoCo v2',
  description: `MoCo v2: query encoder against an EMA key encoder (momentum ${MOCO_DEFAULTS.emaMomentum}) and a queue of ${MOCO_DEFAULTS.mocoQueue} negatives, full precision`,
  quantized: false,
  losses: mocoLosses,
});

export const SSQL_MOCO = defineMethod({
  ...mocoNetwork,
  name: 'ssql-moco',
  label: 'SSQL on MoCo v2',
  description: 'SSQL on MoCo v2: FP and quantized query passes against the FP key encoder and queue',
  quantized: true,
  losses: ssqlMocoLosses,
});
