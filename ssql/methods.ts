// One training step's loss for SimSiam and SSQL on SimSiam (SSQL-SPEC §1), and for BYOL and
// SSQL on BYOL (§7). The functions build the loss (the caller runs backward, the optimizer and,
// for BYOL, the target's EMA update) and never read back.
import { Tensor, add, mulScalar, noGrad } from '../engine/index.ts';
import { simsiamLoss } from '../engine/index.ts';
import type { ByolNet } from './models/byol.ts';
import type { SimSiamNet } from './models/resnet.ts';
import type { QuantContext } from './models/quant.ts';
import type { Module } from '../engine/index.ts';

export interface BitPair {
  wbit: number;
  abit: number;
}

export interface StepLosses {
  /** The loss to differentiate. */
  loss: Tensor;
  /** The full-precision SimSiam term. */
  fp: Tensor;
  /** SSQL's quantized term (null for SimSiam). */
  quant: Tensor | null;
}

/** (D(p1, z2) + D(p2, z1)) / 2 with stop-gradient targets. */
function symmetric(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor): Tensor {
  return mulScalar(add(simsiamLoss(p1, z2), simsiamLoss(p2, z1)), 0.5);
}

/**
 * SSQL's two online passes over both views: full precision while the activation ranges are
 * recorded, then weights and activations fake-quantized at `bits` with those ranges; each
 * projection goes through the (always FP) predictor. The context is left 'off'.
 */
function fpThenQuantized(ctx: QuantContext, encoder: Module, predictor: Module, x1: Tensor, x2: Tensor, bits: BitPair) {
  ctx.newStep();
  ctx.mode = 'calibrate';
  const z1 = encoder.forward(x1);
  const z2 = encoder.forward(x2);
  const p1 = predictor.forward(z1);
  const p2 = predictor.forward(z2);
  ctx.mode = 'quantize';
  ctx.wbit = bits.wbit;
  ctx.abit = bits.abit;
  try {
    const p1q = predictor.forward(encoder.forward(x1));
    const p2q = predictor.forward(encoder.forward(x2));
    return { z1, z2, p1, p2, p1q, p2q };
  } finally {
    ctx.mode = 'off';
  }
}

export function simsiamLosses(net: SimSiamNet, x1: Tensor, x2: Tensor): StepLosses {
  net.ctx.mode = 'off';
  const z1 = net.encoder.forward(x1);
  const z2 = net.encoder.forward(x2);
  const fp = symmetric(net.predictor.forward(z1), net.predictor.forward(z2), z1, z2);
  return { loss: fp, fp, quant: null };
}

/**
 * SSQL: an FP pass that records activation ranges (both views), then a pass over the same
 * views with weights and activations fake-quantized at `bits`, both predicted by the FP
 * predictor against the FP projections (detached, cross-view):
 * L = 1/2 (D(p1,z2) + D(p2,z1))/2 + 1/2 (D(p1q,z2) + D(p2q,z1))/2.
 * BN layers are shared, in train mode, and update their running statistics in the order
 * FP x1, FP x2, Q x1, Q x2.
 */
export function ssqlLosses(net: SimSiamNet, x1: Tensor, x2: Tensor, bits: BitPair): StepLosses {
  const { z1, z2, p1, p2, p1q, p2q } = fpThenQuantized(net.ctx, net.encoder, net.predictor, x1, x2, bits);
  const fp = symmetric(p1, p2, z1, z2);
  const quant = symmetric(p1q, p2q, z1, z2);
  return { loss: mulScalar(add(fp, quant), 0.5), fp, quant };
}

/** The target encoder's FP projections of both views, as constants (no tape, no gradient).
 * Its BN layers run in train mode and update their own running statistics (x1, then x2). */
function targets(net: ByolNet, x1: Tensor, x2: Tensor): [Tensor, Tensor] {
  return noGrad(() => [net.targetForward(x1), net.targetForward(x2)]);
}

/**
 * BYOL, as the reference code trains it (`Qbyol.py`/`byol.py` with the configs' criterion
 * `CosineSimilarity`): online predictions p1 = h(f(x1)), p2 = h(f(x2)) against the EMA target's
 * projections z1t = g(x1), z2t = g(x2), cross-view:
 * L = (D(p1, z2t) + D(p2, z1t)) / 2, with D(p, z) = -mean_batch cos(p, z) (SimSiam's D).
 * The BYOL paper's form, mean(2 - 2cos(p1, z2t)) + mean(2 - 2cos(p2, z1t)), equals 4 + 4 L:
 * the same minimiser with 4x the gradient (the paper pairs it with LARS, the reference code
 * with SGD at SimSiam's learning rate; this follows the reference).
 * The online pass runs first (BN order: online x1, x2, then target x1, x2).
 */
export function byolLosses(net: ByolNet, x1: Tensor, x2: Tensor): StepLosses {
  net.ctx.mode = 'off';
  const p1 = net.predictor.forward(net.encoder.forward(x1));
  const p2 = net.predictor.forward(net.encoder.forward(x2));
  const [z1t, z2t] = targets(net, x1, x2);
  const fp = symmetric(p1, p2, z1t, z2t);
  return { loss: fp, fp, quant: null };
}

/**
 * SSQL on BYOL (SSQL-SPEC §7, `Qbyol.py`): ssqlLosses' two online passes - FP recording the
 * activation ranges (both views), then weights and activations fake-quantized at `bits` with
 * those ranges, each through the FP predictor - against the FP EMA target's projections
 * (detached, cross-view; the target is never quantized):
 * L = 1/2 (D(p1,z2t) + D(p2,z1t))/2 + 1/2 (D(p1q,z2t) + D(p2q,z1t))/2.
 * The online BN layers update their running statistics in the order FP x1, FP x2, Q x1, Q x2;
 * the target's, x1 then x2, after them (the reference's order).
 */
export function ssqlByolLosses(net: ByolNet, x1: Tensor, x2: Tensor, bits: BitPair): StepLosses {
  const { p1, p2, p1q, p2q } = fpThenQuantized(net.ctx, net.encoder, net.predictor, x1, x2, bits);
  const [z1t, z2t] = targets(net, x1, x2);
  const fp = symmetric(p1, p2, z1t, z2t);
  const quant = symmetric(p1q, p2q, z1t, z2t);
  return { loss: mulScalar(add(fp, quant), 0.5), fp, quant };
}

/** Draws the step's bit pair: wbit uniform in [w0, w1], abit uniform in [a0, a1]. */
export class BitSampler {
  constructor(readonly wRange: [number, number] = [2, 8], readonly aRange: [number, number] = [4, 8]) {}

  draw(random: () => number): BitPair {
    const pick = ([lo, hi]: [number, number]) => lo + Math.floor(random() * (hi - lo + 1));
    return { wbit: pick(this.wRange), abit: pick(this.aRange) };
  }
}
