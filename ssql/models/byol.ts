// BYOL (and SSQL on BYOL, docs/method.md#byol-variant): an online encoder f (ResNet + projector as `fc`, the
// one SimSiamNet has) and predictor h, trained by SGD, and a target encoder g of the same
// architecture that is never trained: it starts as a copy of the online encoder and follows it
// as an exponential moving average of the parameters, g <- m g + (1 - m) f (momentum 0.99 in
// the reference configs), after every optimizer step.
//
// State-dict keys: `encoder.*` and `predictor.*` (the online network, the same keys as
// SimSiamNet's, so evaluation and `ssql eval` read a BYOL checkpoint unchanged), and `target.*`
// (the target encoder: parameters and its own BN running statistics).
//
// The target's batch norms stay in train mode and keep their own running statistics, updated
// by the target's forward passes (x1 then x2, each step); the EMA covers parameters only, as
// in the reference code (`Qbyol.py` zips `encoder_q.parameters()` with
// `encoder_k.parameters()`) and BYOL's. The target has its own QuantContext, always 'off':
// the targets are full precision in SSQL-BYOL too, and calibrating the online encoder never
// touches it.
//
// Order relative to the reference: `Qbyol.py` applies the EMA inside the forward pass, after
// the online passes and before the target's; `Trainer` calls `updateTarget` right after the
// optimizer step instead. The online weights do not change between the end of one step and the
// online passes of the next, so every step sees the same target either way (the reference's
// first update averages the copy with itself).
import { Tensor } from '../../engine/index.ts';
import { Module } from '../../engine/index.ts';
import type { Random, Sequential } from '../../engine/index.ts';
import { emaUpdate } from '../../engine/index.ts';
import { QuantContext } from './quant.ts';
import { ResNet, predictor, projector } from './resnet.ts';
import type { SimSiamConfig } from './resnet.ts';

/** BYOL uses SimSiam's sizes: projector width `projDim`, predictor bottleneck `predHidden`. */
export type ByolConfig = SimSiamConfig;

/** A constant generator for the target's throwaway initialization (it is overwritten by the
 * copy), so building the target draws nothing from the caller's seeded generator. */
const constant: Random = () => 0.5;

export class ByolNet extends Module {
  /** The online encoder's quantization context (SSQL-BYOL calibrates and quantizes it). */
  readonly ctx: QuantContext;
  /** The target's own context: never leaves 'off'. */
  readonly targetCtx: QuantContext;
  readonly encoder: ResNet;
  readonly predictor: Sequential;
  readonly target: ResNet;
  /** [target, online] parameter pairs, in state-dict order. */
  private readonly pairs: [Tensor, Tensor][];

  constructor(readonly config: ByolConfig, random: Random) {
    super();
    this.ctx = new QuantContext();
    this.encoder = this.registerModule('encoder', new ResNet(this.ctx, config.backbone, random));
    this.encoder.setHead(projector(this.ctx, this.encoder.featureDim, config.projDim, random));
    this.predictor = this.registerModule('predictor', predictor(config.projDim, config.predHidden, random));
    this.targetCtx = new QuantContext();
    this.target = this.registerModule('target', new ResNet(this.targetCtx, config.backbone, constant));
    this.target.setHead(projector(this.targetCtx, this.target.featureDim, config.projDim, constant));
    // Start as an exact copy of the online encoder (parameters and BN buffers), then freeze.
    this.restartMomentumEncoder();
    const online = new Map(this.encoder.namedParameters());
    this.pairs = this.target.namedParameters().map(([name, t]) => {
      t.requiresGrad = false;
      const o = online.get(name);
      if (!o) throw new Error(`ByolNet: the online encoder lacks '${name}'`);
      return [t, o];
    });
  }

  /** Copy the online encoder (parameters and BN buffers) into the target. */
  restartMomentumEncoder(): void {
    this.target.loadStateDict(this.encoder.stateDict());
  }

  /** The parameters SGD trains: the online encoder's and the predictor's (not the target's). */
  trainableParameters(): Tensor[] {
    return [...this.encoder.parameters(), ...this.predictor.parameters()];
  }

  /** target <- m * target + (1 - m) * online for every parameter, in place on the GPU (four
   * a dispatch, no readback). BN running statistics are not averaged (see above). */
  updateTarget(momentum: number): void {
    emaUpdate(this.pairs.map(([t]) => t), this.pairs.map(([, o]) => o), momentum);
  }

  /** The online encoder's projection. */
  forward(x: Tensor): Tensor {
    return this.encoder.forward(x);
  }

  /** The target encoder's projection, full precision (its context is never set to anything
   * but 'off'; call under noGrad). */
  targetForward(x: Tensor): Tensor {
    return this.target.forward(x);
  }

  /** Release both quantization contexts' observers (tensors are disposed by the owner). */
  disposeContexts(): void {
    this.ctx.dispose();
    this.targetCtx.dispose();
  }
}
