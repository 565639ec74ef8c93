// The quantization ranges of a network as plain numbers: per quantized layer the per-channel
// max|w| its weight quantizer uses, per activation quantizer the calibrated [min, max]. Freezing
// them is what quantization-aware fine-tuning does (the reference computes every scale once, at
// calibration, and keeps it while the weights train); saving them with a fine-tuned checkpoint
// lets evaluation and export use exactly the ranges the network was fine-tuned with.
// Platform independent.
import { Tensor } from '../../engine/index.ts';
import type { Module } from '../../engine/index.ts';
import { ActQuant, QConv2d, QLinear } from './quant.ts';

export interface QuantRanges {
  /** Module name -> per-output-channel max|w| (the frozen weight ranges). */
  weights: Record<string, number[]>;
  /** Module name -> [min, max], or null for a quantizer that never saw data. */
  activations: Record<string, [number, number] | null>;
}

function weightLayers(net: Module): [string, QConv2d | QLinear][] {
  return net.namedModules().filter((e): e is [string, QConv2d | QLinear] => e[1] instanceof QConv2d || e[1] instanceof QLinear);
}

function actLayers(net: Module): [string, ActQuant][] {
  return net.namedModules().filter((e): e is [string, ActQuant] => e[1] instanceof ActQuant);
}

/** Freeze every quantized layer's weight ranges at its current weights (the activation ranges
 * stay whatever was last calibrated as long as nothing resets them). */
export function freezeWeightRanges(net: Module): void {
  for (const [, layer] of weightLayers(net)) layer.quantizer.freeze(layer.weight);
}

/** Back to ranges computed from the weights at every use. */
export function unfreezeWeightRanges(net: Module): void {
  for (const [, layer] of weightLayers(net)) layer.quantizer.unfreeze();
}

/** The frozen weight ranges and the activation ranges (readbacks). */
export async function readRanges(net: Module): Promise<QuantRanges> {
  const weights: QuantRanges['weights'] = {};
  for (const [name, layer] of weightLayers(net)) {
    const r = layer.quantizer.frozenRange;
    if (r) weights[name] = [...(await r.toArray())];
  }
  const activations: QuantRanges['activations'] = {};
  for (const [name, q] of actLayers(net)) {
    const { min, max } = await q.observer.read();
    activations[name] = Number.isFinite(min) && Number.isFinite(max) ? [min, max] : null;
  }
  return { weights, activations };
}

/** Set saved ranges: each named weight quantizer frozen at its values, each activation observer
 * holding exactly its [min, max]. Every activation quantizer must be named; an unknown name or
 * a wrong channel count is an error naming it. */
export function applyRanges(net: Module, ranges: QuantRanges, source = 'ranges'): void {
  const layers = new Map(weightLayers(net));
  const acts = new Map(actLayers(net));
  for (const name of Object.keys(ranges.weights)) if (!layers.has(name)) throw new RangeError(`${source}: weight range for '${name}', which this network does not have`);
  for (const name of Object.keys(ranges.activations)) if (!acts.has(name)) throw new RangeError(`${source}: activation range for '${name}', which this network does not have`);
  for (const name of acts.keys()) if (!(name in ranges.activations)) throw new RangeError(`${source}: no activation range for '${name}'`);
  for (const [name, values] of Object.entries(ranges.weights)) {
    const layer = layers.get(name)!;
    if (values.length !== layer.weight.shape[0]) throw new RangeError(`${source}: '${name}' has ${layer.weight.shape[0]} output channels, its weight range ${values.length} values`);
    layer.quantizer.freeze(layer.weight, values);
  }
  for (const [name, q] of acts) {
    const r = ranges.activations[name];
    q.observer.reset();
    if (!r) continue;
    if (!(r[0] <= r[1])) throw new RangeError(`${source}: activation range of '${name}' is [${r.join(', ')}], not [min, max]`);
    const t = Tensor.fromArray(Float32Array.from(r), [2]);
    q.observer.observe(t);
    t.dispose();
  }
}
