// BYOL and SSQL on BYOL (docs/method.md#byol-variant): their losses and their registry entries. The network
// (ssql/models/byol.ts) adds an EMA target encoder, updated after every optimizer step.
import { Tensor, add, mulScalar, noGrad } from '../../engine/index.ts';
import { ByolNet } from '../models/byol.ts';
import type { ByolConfig } from '../models/byol.ts';
import type { Random } from '../../engine/index.ts';
import { defineMethod } from './method.ts';
import type { BitPair, MethodSettings, StepLosses } from './method.ts';
import { fpThenQuantized, symmetric } from './passes.ts';

/** The reference configs' target momentum. */
export const DEFAULT_EMA_MOMENTUM = 0.99;

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
  const [p1, p2] = net.ctx.withQuantization({ mode: 'off' }, () => [
    net.predictor.forward(net.encoder.forward(x1)),
    net.predictor.forward(net.encoder.forward(x2)),
  ]);
  const [z1t, z2t] = targets(net, x1, x2);
  const fp = symmetric(p1, p2, z1t, z2t);
  return { loss: fp, fp, quant: null };
}

/**
 * SSQL on BYOL (docs/method.md#byol-variant, `Qbyol.py`): ssqlLosses' two online passes - FP recording the
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

/** What both BYOL methods share: the network with its EMA target, SGD on the online part only,
 * and after each optimizer step target <- m target + (1 - m) online. */
const byolNetwork = {
  settings: { emaMomentum: DEFAULT_EMA_MOMENTUM },
  createNet: (config: ByolConfig, random: Random) => new ByolNet(config, random),
  trainableParameters: (net: ByolNet) => net.trainableParameters(),
  afterStep: (net: ByolNet, settings: MethodSettings) => net.updateTarget(settings.emaMomentum ?? DEFAULT_EMA_MOMENTUM),
};

export const BYOL = defineMethod({
  ...byolNetwork,
  name: 'byol',
  label: 'BYOL',
  description: `BYOL: online network against an EMA target encoder (momentum ${DEFAULT_EMA_MOMENTUM}), full precision`,
  quantized: false,
  losses: byolLosses,
});

export const SSQL_BYOL = defineMethod({
  ...byolNetwork,
  name: 'ssql-byol',
  label: 'SSQL on BYOL',
  description: `SSQL on BYOL: full-precision and quantized online passes against the EMA target (momentum ${DEFAULT_EMA_MOMENTUM})`,
  quantized: true,
  losses: ssqlByolLosses,
});
