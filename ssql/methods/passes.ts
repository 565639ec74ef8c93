// Building blocks the methods' losses share: the symmetric SimSiam loss, and SSQL's FP pass
// (recording activation ranges) followed by the quantized pass over the same two views.
import { Tensor, add, mulScalar, simsiamLoss } from '../../engine/index.ts';
import type { Module } from '../../engine/index.ts';
import type { QuantContext } from '../models/quant.ts';
import type { BitPair } from './method.ts';

/** (D(p1, z2) + D(p2, z1)) / 2 with stop-gradient targets. */
export function symmetric(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor): Tensor {
  return mulScalar(add(simsiamLoss(p1, z2), simsiamLoss(p2, z1)), 0.5);
}

/**
 * SSQL's two online passes over both views: full precision while the activation ranges are
 * recorded, then weights and activations fake-quantized at `bits` with those ranges; each
 * projection goes through the (always FP) predictor. The context's setting is restored after
 * each pass.
 */
export function fpThenQuantized(ctx: QuantContext, encoder: Module, predictor: Module, x1: Tensor, x2: Tensor, bits: BitPair) {
  ctx.newStep();
  const fp = ctx.withQuantization({ mode: 'calibrate' }, () => {
    const z1 = encoder.forward(x1);
    const z2 = encoder.forward(x2);
    return { z1, z2, p1: predictor.forward(z1), p2: predictor.forward(z2) };
  });
  const quantized = ctx.withQuantization({ mode: 'quantize', wbit: bits.wbit, abit: bits.abit }, () => ({
    p1q: predictor.forward(encoder.forward(x1)),
    p2q: predictor.forward(encoder.forward(x2)),
  }));
  return { ...fp, ...quantized };
}
