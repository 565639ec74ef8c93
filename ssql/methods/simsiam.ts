// SimSiam and SSQL on SimSiam (docs/method.md#training-step): their losses and their registry entries.
import { Tensor, add, mulScalar } from '../../engine/index.ts';
import { SimSiamNet } from '../models/resnet.ts';
import { defineMethod } from './method.ts';
import type { BitPair, StepLosses } from './method.ts';
import { fpThenQuantized, symmetric } from './passes.ts';

export function simsiamLosses(net: SimSiamNet, x1: Tensor, x2: Tensor): StepLosses {
  return net.ctx.withQuantization({ mode: 'off' }, () => {
    const z1 = net.encoder.forward(x1);
    const z2 = net.encoder.forward(x2);
    const fp = symmetric(net.predictor.forward(z1), net.predictor.forward(z2), z1, z2);
    return { loss: fp, fp, quant: null };
  });
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

export const SSQL = defineMethod({
  name: 'ssql',
  label: 'SSQL',
  description: 'SSQL on SimSiam: a full-precision and a quantized pass at a random bit pair each step',
  quantized: true,
  createNet: (config, random) => new SimSiamNet(config, random),
  losses: ssqlLosses,
});

export const SIMSIAM = defineMethod({
  name: 'simsiam',
  label: 'SimSiam',
  description: 'SimSiam, full precision',
  quantized: false,
  createNet: (config, random) => new SimSiamNet(config, random),
  losses: simsiamLosses,
});
