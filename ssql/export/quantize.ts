// The quantizer's arithmetic (docs/method.md#quantizer-arithmetic) on the CPU, in float32 exactly as the GPU kernels
// (shaders/quant.wgsl) do it, for export: the integer weights and the activation scale and
// zero point that a deployed model needs. Platform independent.
//   weights      s_c = m_c / ((2^b - 1) / 2), q = clamp(round(w / s_c), -2^(b-1), 2^(b-1) - 1)
//   activations  s = (max - min) / (2^b - 1), zp = -round(min / s)
// round() is half to even; each f32 operation is rounded to f32 (Math.fround), so these
// values equal the kernels' bit for bit (tests/ssql/export.test.ts checks it).

const f32 = Math.fround;

export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface WeightQuantization {
  bits: number;
  /** Integer levels, row-major like the weight (channels on axis 0). */
  q: Int8Array;
  /** Per output channel. */
  scale: Float32Array;
}

function checkBits(bits: number, what: string): void {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new RangeError(`${what}: ${bits} bits cannot be exported (2..8 fit the 8-bit integer types of ONNX QuantizeLinear/DequantizeLinear)`);
}

/** Per-output-channel symmetric quantization of `w` ([channels, ...] row-major), or null
 * when a channel is all zero (a zero scale: the kernels then leave the whole tensor FP). */
export function quantizeWeight(w: Float32Array, channels: number, bits: number): WeightQuantization | null {
  checkBits(bits, 'weight quantization');
  if (w.length % channels !== 0) throw new RangeError(`quantizeWeight: ${w.length} values do not split into ${channels} channels`);
  const per = w.length / channels;
  const denominator = f32((2 ** bits - 1) / 2);
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const scale = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let m = 0;
    for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(w[i]));
    scale[c] = f32(m / denominator);
    if (!(scale[c] > 0)) return null;
  }
  const q = new Int8Array(w.length);
  for (let c = 0; c < channels; c++) {
    const s = scale[c];
    for (let i = c * per; i < (c + 1) * per; i++) q[i] = Math.min(hi, Math.max(lo, roundHalfEven(f32(w[i] / s))));
  }
  return { bits, q, scale };
}

export interface ActQuantization {
  bits: number;
  /** The calibrated range. */
  min: number;
  max: number;
  scale: number;
  /** Levels are clamp(round(x / scale) + zeroPoint, 0, 2^bits - 1). */
  zeroPoint: number;
}

/** Per-tensor asymmetric parameters from a calibrated range, or null for a zero or
 * never-observed range (the kernels then pass the activation through). */
export function quantizeActRange(min: number, max: number, bits: number): ActQuantization | null {
  checkBits(bits, 'activation quantization');
  const scale = f32(f32(max - min) / (2 ** bits - 1));
  if (!(scale > 0) || !Number.isFinite(scale)) return null;
  const zeroPoint = -roundHalfEven(f32(min / scale));
  return { bits, min, max, scale, zeroPoint };
}
