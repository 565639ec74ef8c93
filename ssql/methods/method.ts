// What a pretraining method is to the trainer, the CLI and the demo: one `defineMethod` entry
// (name, description, network factory, loss, after-step hook, quantized or not, trainable
// parameters). The entries are listed in ./registry.ts; everything that offers or runs a method
// reads them from there.
import type { Module, Random, Rng, Sequential, Tensor } from '../../engine/index.ts';
import type { QuantContext } from '../models/quant.ts';
import type { ResNet, SimSiamConfig } from '../models/resnet.ts';

export interface BitPair {
  wbit: number;
  abit: number;
}

export interface StepLosses {
  /** The loss to differentiate. */
  loss: Tensor;
  /** The full-precision term. */
  fp: Tensor;
  /** SSQL's quantized term (null for full-precision methods). */
  quant: Tensor | null;
}

/** What every pretraining network has: the online `encoder` (backbone + projector; what
 * evaluation uses), the `predictor` (null for a method without one: MoCo), and the encoder's
 * quantization context. */
export interface PretrainNet extends Module {
  readonly ctx: QuantContext;
  readonly encoder: ResNet;
  readonly predictor: Sequential | null;
  /** Release the quantization contexts' observers (the tensors are disposed by the owner). */
  disposeContexts(): void;
  /** For a network with a momentum encoder (BYOL's target, MoCo's key encoder): make it a copy
   * of the online encoder again, after the online weights were loaded from elsewhere
   * (`pretrain --init`), as the constructor does for a fresh network. */
  restartMomentumEncoder?(): void;
}

/** Training settings that only some methods read (part of TrainConfig). */
export interface MethodSettings {
  /** The momentum m of BYOL's target and MoCo's key encoder: target <- m target + (1 - m)
   * online after each step. */
  emaMomentum?: number;
  /** MoCo: the key dimension D, the number of negatives K in the queue, the temperature T. */
  mocoDim?: number;
  mocoQueue?: number;
  mocoTemperature?: number;
}

interface MethodInfo<Name extends string> {
  /** The CLI's `--method` value and the checkpoint's `method`. */
  readonly name: Name;
  /** Display name (the demo's menu). */
  readonly label: string;
  /** One line for `--help`. */
  readonly description: string;
  /** The settings this method reads, with their defaults; a resumed run must match them. */
  readonly settings?: MethodSettings;
}

interface NetworkSpec<N extends PretrainNet> {
  /** `settings`: the method's settings with its defaults filled in. */
  createNet(config: SimSiamConfig, random: Random, settings: MethodSettings): N;
  /** What SGD trains (default: every parameter of the network). Parameters the model froze
   * (requiresGrad false, e.g. the projector's last bias) are left out either way. */
  trainableParameters?(net: N): Tensor[];
  /** Called after each optimizer step (e.g. BYOL's EMA target update). */
  afterStep?(net: N, settings: MethodSettings): void;
}

/** A full-precision method: one loss from the two views. */
interface FullPrecisionSpec<N extends PretrainNet> {
  readonly quantized: false;
  losses(net: N, x1: Tensor, x2: Tensor): StepLosses;
}

/** A quantized method: the trainer draws a bit pair (`BitSampler`) for every step. */
interface QuantizedSpec<N extends PretrainNet> {
  readonly quantized: true;
  losses(net: N, x1: Tensor, x2: Tensor, bits: BitPair): StepLosses;
}

export type MethodSpec<Name extends string, N extends PretrainNet> =
  MethodInfo<Name> & NetworkSpec<N> & (FullPrecisionSpec<N> | QuantizedSpec<N>);

/** A method bound to one network it built. */
export interface BoundMethod {
  readonly net: PretrainNet;
  readonly trainable: Tensor[];
  /** The step's losses; `bits` is the drawn pair for a quantized method, else null. */
  losses(x1: Tensor, x2: Tensor, bits: BitPair | null): StepLosses;
  afterStep(settings: MethodSettings): void;
}

export interface Method<Name extends string = string> {
  readonly name: Name;
  readonly label: string;
  readonly description: string;
  readonly quantized: boolean;
  readonly settings: MethodSettings;
  /** Build the method's network (drawing its initialization from `random`) and bind the
   * method's step to it; `settings` override the method's defaults (`Method.settings`). */
  create(config: SimSiamConfig, random: Random, settings?: MethodSettings): BoundMethod;
}

/** One registry entry from its spec (the network type stays inside the entry). */
export function defineMethod<Name extends string, N extends PretrainNet>(spec: MethodSpec<Name, N>): Method<Name> {
  return {
    name: spec.name,
    label: spec.label,
    description: spec.description,
    quantized: spec.quantized,
    settings: spec.settings ?? {},
    create(config, random, settings = {}) {
      const net = spec.createNet(config, random, withDefaults(spec.settings ?? {}, settings));
      return {
        net,
        trainable: (spec.trainableParameters ? spec.trainableParameters(net) : net.parameters()).filter((p) => p.requiresGrad),
        losses(x1, x2, bits) {
          if (!spec.quantized) return spec.losses(net, x1, x2);
          if (!bits) throw new Error(`method '${spec.name}' is quantized: its step needs a bit pair`);
          return spec.losses(net, x1, x2, bits);
        },
        afterStep(settings) {
          spec.afterStep?.(net, withDefaults(spec.settings ?? {}, settings));
        },
      };
    },
  };
}

/** `settings` with `defaults` for what they leave unset (undefined counts as unset). */
export function withDefaults(defaults: MethodSettings, settings: MethodSettings): MethodSettings {
  const out: MethodSettings = { ...defaults };
  for (const [k, v] of Object.entries(settings) as [keyof MethodSettings, number | undefined][]) if (v !== undefined && k in defaults) out[k] = v;
  return out;
}

/** Draws the step's bit pair: wbit uniform in [w0, w1], abit uniform in [a0, a1] (both ends
 * included). */
export class BitSampler {
  constructor(readonly wRange: [number, number] = [2, 8], readonly aRange: [number, number] = [4, 8]) {}

  draw(rng: Rng): BitPair {
    return { wbit: rng.int(this.wRange[0], this.wRange[1] + 1), abit: rng.int(this.aRange[0], this.aRange[1] + 1) };
  }
}
