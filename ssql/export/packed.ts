// The deployable weights of a captured backbone (./model.ts) as safetensors: each quantized
// conv's integer levels packed at the setting's bit-width, with their per-channel scales, the
// BN tensors, and every activation quantizer's scale and zero point. Platform independent.
//
// Packing: a weight's levels in row-major order ([out, in, kH, kW]), each a b-bit two's
// complement field, value i at bits [i*b, (i+1)*b) of a little-endian bit stream (least
// significant bit first; at 4 bits, two values a byte, the first in the low nibble), padded
// with zero bits to a whole byte. Stored as U8 '<conv>.weight.packed'; the shape and bits are
// in the metadata ('layers', JSON). An FP conv (setting 'fp', or a tensor the quantizer passes
// through) is stored as F32 '<conv>.weight'.
import type { SafeTensor } from '../checkpoint/safetensors.ts';
import type { ExportAct, ExportBn, ExportConv, ExportModel, ExportUnit } from './model.ts';

export const PACKED_FORMAT = 'ssql-webgpu-quantized-1';

/** Pack signed integers (each within [-2^(bits-1), 2^(bits-1) - 1]) as described above. */
export function packInts(values: ArrayLike<number>, bits: number): Uint8Array {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new RangeError(`packInts: ${bits} bits is not 1..8`);
  const out = new Uint8Array(Math.ceil((values.length * bits) / 8));
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const mask = (1 << bits) - 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`packInts: value ${v} at ${i} does not fit ${bits} signed bits`);
    const field = v & mask;
    const bit = i * bits;
    const byte = bit >> 3;
    const shift = bit & 7;
    out[byte] |= (field << shift) & 0xff;
    if (shift + bits > 8) out[byte + 1] |= field >> (8 - shift);
  }
  return out;
}

/** Inverse of packInts. */
export function unpackInts(packed: Uint8Array, bits: number, count: number): Int32Array {
  if (packed.length < Math.ceil((count * bits) / 8)) throw new RangeError(`unpackInts: ${packed.length} bytes hold fewer than ${count} values of ${bits} bits`);
  const out = new Int32Array(count);
  const mask = (1 << bits) - 1;
  for (let i = 0; i < count; i++) {
    const bit = i * bits;
    const byte = bit >> 3;
    const shift = bit & 7;
    let field = packed[byte] >> shift;
    if (shift + bits > 8) field |= packed[byte + 1] << (8 - shift);
    field &= mask;
    out[i] = field & (1 << (bits - 1)) ? field - (1 << bits) : field;
  }
  return out;
}

function f32(values: ArrayLike<number>, shape: number[]): SafeTensor {
  return { dtype: 'F32', shape, data: new Uint8Array(Float32Array.from(values).buffer) };
}

export interface PackedLayer {
  shape: number[];
  /** 0: stored as F32. */
  bits: number;
}

export interface PackedActivation {
  bits: number;
  scale: number;
  zero_point: number;
  min: number;
  max: number;
}

/** Tensors and metadata for `encodeSafetensors` / `saveSafetensors`. */
export function packedWeights(model: ExportModel): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
  const tensors: Record<string, SafeTensor> = {};
  const layers: Record<string, PackedLayer> = {};
  const activations: Record<string, PackedActivation> = {};
  const conv = (c: ExportConv) => {
    if (c.quant) {
      tensors[`${c.name}.weight.packed`] = { dtype: 'U8', shape: [Math.ceil((c.quant.q.length * c.quant.bits) / 8)], data: packInts(c.quant.q, c.quant.bits) };
      tensors[`${c.name}.weight.scale`] = f32(c.quant.scale, [c.shape[0]]);
    } else {
      tensors[`${c.name}.weight`] = f32(c.weight, c.shape);
    }
    layers[c.name] = { shape: c.shape, bits: c.quant?.bits ?? 0 };
  };
  const bn = (b: ExportBn) => {
    const n = [b.gamma.length];
    tensors[`${b.name}.weight`] = f32(b.gamma, n);
    tensors[`${b.name}.bias`] = f32(b.beta, n);
    tensors[`${b.name}.running_mean`] = f32(b.mean, n);
    tensors[`${b.name}.running_var`] = f32(b.variance, n);
  };
  const act = (a: ExportAct | null) => {
    if (!a?.quant) return;
    const q = a.quant;
    activations[a.name] = { bits: q.bits, scale: q.scale, zero_point: q.zeroPoint, min: q.min, max: q.max };
  };
  const unit = (u: ExportUnit) => {
    conv(u.conv);
    bn(u.bn);
    act(u.act);
  };
  unit(model.stem);
  for (const b of model.blocks) {
    b.path.forEach(unit);
    if (b.downsample) unit(b.downsample);
    act(b.out);
  }
  if (model.head) {
    tensors['head.weight'] = f32(model.head.weight, [model.head.outFeatures, model.featureDim]);
    if (model.head.bias) tensors['head.bias'] = f32(model.head.bias, [model.head.outFeatures]);
  }
  const eps = model.stem.bn.eps;
  return {
    tensors,
    metadata: {
      format: PACKED_FORMAT,
      setting: model.setting.name,
      packing: 'b-bit two\'s complement fields, value i at bits [i*b, (i+1)*b) of a little-endian, LSB-first bit stream; weight = level * scale[out channel]',
      activation: 'levels clamp(round(x / scale) + zero_point, 0, 2^bits - 1); value (level - zero_point) * scale',
      bn_eps: String(eps),
      layers: JSON.stringify(layers),
      activations: JSON.stringify(activations),
    },
  };
}
