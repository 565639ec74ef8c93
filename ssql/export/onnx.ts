// ONNX export of a captured backbone (./model.ts) in the QDQ format: the float graph with
// DequantizeLinear after every quantized weight and QuantizeLinear + DequantizeLinear at every
// activation quantizer, so runtimes (onnxruntime, onnxruntime-web) compute exactly the
// fake-quantized network, and their quantization tools can fuse it into integer kernels.
// Written by hand with ./protobuf.ts; platform independent.
//
// Choices (opset 13, the oldest with per-channel DequantizeLinear, run by every current runtime):
// - Weights: stored as INT8 initializers holding the integer levels q (already clamped to the
//   setting's b-bit range [-2^(b-1), 2^(b-1) - 1]), per-channel scales s_c on axis 0 and zero
//   points 0: DequantizeLinear gives q * s_c, the engine's fake-quantized weight bit for bit.
//   The lopsided grid (s = max|w| / ((2^b - 1) / 2), so the largest level is used on one side
//   only) needs nothing special: it is in the integers and scales.
// - Activations: per tensor, UINT8, the calibrated scale s and a zero point. The engine's levels
//   are clamp(round(x / s) + zp, 0, 2^b - 1); QuantizeLinear saturates to [0, 255] only, so
//   below 8 bits a Clip(x, (0 - zp) * s, (2^b - 1 - zp) * s) comes first. round(lo / s) and
//   round(hi / s) are exactly -zp and 2^b - 1 - zp (the products are within an ulp of those
//   integers), so Clip + QuantizeLinear + DequantizeLinear is the engine's fake quantization.
//   At 8 bits the saturation is the clamp and no Clip is written. ONNX's zero point is zp when
//   it lies in [0, 255] (always, for ranges that contain 0, as every post-ReLU range here does);
//   otherwise any zero point that keeps the 2^b levels inside [0, 255] gives the same result
//   (the Clip does the clamping), and one is chosen; a range too far from 0 for that is refused.
//   Opset 21's INT4/UINT4 types would express 4 bits without the Clip but not 2, 3, 5, 6 or 7
//   bits, and fewer runtimes run them, so one form serves every setting.
// - BatchNormalization stays a separate node (not folded), as the engine computes it; ReLU,
//   Add, GlobalAveragePool, Flatten, and an optional FP linear head (Gemm).
// - Input 'input' [N, C, H, W] float (normalized images; the normalization is in the model's
//   metadata when given); outputs 'features' [N, featureDim] and, with a head, 'logits'.
import type { ExportAct, ExportBn, ExportConv, ExportModel, ExportUnit } from './model.ts';
import { ProtoWriter } from './protobuf.ts';

export const ONNX_OPSET = 13;
const IR_VERSION = 7; // the IR of ONNX 1.8, which introduced opset 13

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

type Attribute = number | number[] | string | { float: number };

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attributes: Record<string, Attribute>;
}

interface Initializer {
  name: string;
  dataType: number;
  dims: number[];
  raw: Uint8Array;
}

class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();

  node(op: string, inputs: string[], output: string, attributes: Record<string, Attribute> = {}): string {
    this.claim(output);
    this.nodes.push({ op, inputs, outputs: [output], name: `${op}:${output}`, attributes });
    return output;
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`onnx export: the name '${name}' is used twice`);
    this.names.add(name);
  }

  private init(name: string, dataType: number, dims: number[], raw: Uint8Array): string {
    this.claim(name);
    this.initializers.push({ name, dataType, dims, raw });
    return name;
  }

  floats(name: string, dims: number[], v: ArrayLike<number>): string {
    return this.init(name, DataType.FLOAT, dims, new Uint8Array(Float32Array.from(v).buffer));
  }

  int8(name: string, dims: number[], v: Int8Array): string {
    return this.init(name, DataType.INT8, dims, new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice());
  }

  uint8(name: string, dims: number[], v: ArrayLike<number>): string {
    return this.init(name, DataType.UINT8, dims, Uint8Array.from(v));
  }
}

function conv(g: GraphBuilder, x: string, c: ExportConv): string {
  let w: string;
  if (c.quant) {
    const q = g.int8(`${c.name}.weight_quantized`, c.shape, c.quant.q);
    const s = g.floats(`${c.name}.weight_scale`, [c.shape[0]], c.quant.scale);
    const zp = g.int8(`${c.name}.weight_zero_point`, [c.shape[0]], new Int8Array(c.shape[0]));
    w = g.node('DequantizeLinear', [q, s, zp], `${c.name}.weight`, { axis: 0 });
  } else {
    w = g.floats(`${c.name}.weight`, c.shape, c.weight);
  }
  const p = c.padding;
  return g.node('Conv', [x, w], c.name, {
    kernel_shape: c.shape.slice(2), strides: [c.stride, c.stride], pads: [p, p, p, p], dilations: [1, 1], group: 1,
  });
}

function batchNorm(g: GraphBuilder, x: string, bn: ExportBn): string {
  const n = [bn.gamma.length];
  return g.node('BatchNormalization', [
    x, g.floats(`${bn.name}.weight`, n, bn.gamma), g.floats(`${bn.name}.bias`, n, bn.beta),
    g.floats(`${bn.name}.running_mean`, n, bn.mean), g.floats(`${bn.name}.running_var`, n, bn.variance),
  ], bn.name, { epsilon: { float: bn.eps } });
}

/** The ONNX zero point for levels clamp(round(x / s) + zp, 0, 2^b - 1) in a UINT8 container. */
export function onnxZeroPoint(zeroPoint: number, bits: number, what: string): number {
  const z = Math.min(255, Math.max(0, zeroPoint));
  // Levels k = round(x / s) lie in [-zp, 2^b - 1 - zp]; k + z must stay in [0, 255].
  if (z < zeroPoint || z + (2 ** bits - 1 - zeroPoint) > 255) {
    throw new RangeError(`onnx export: ${what}: zero point ${zeroPoint} at ${bits} bits (a range far from 0) does not fit ONNX's UINT8 activations`);
  }
  return z;
}

function actQuant(g: GraphBuilder, x: string, act: ExportAct): string {
  const q = act.quant;
  if (!q) return x;
  const { name } = act;
  const scale = g.floats(`${name}.scale`, [], [q.scale]);
  const zp = g.uint8(`${name}.zero_point`, [], [onnxZeroPoint(q.zeroPoint, q.bits, name)]);
  let clipped = x;
  if (q.bits < 8) {
    const lo = g.floats(`${name}.clip_min`, [], [Math.fround((0 - q.zeroPoint) * q.scale)]);
    const hi = g.floats(`${name}.clip_max`, [], [Math.fround((2 ** q.bits - 1 - q.zeroPoint) * q.scale)]);
    clipped = g.node('Clip', [x, lo, hi], `${name}.clipped`);
  }
  const levels = g.node('QuantizeLinear', [clipped, scale, zp], `${name}.quantized`);
  return g.node('DequantizeLinear', [levels, scale, zp], name);
}

function unit(g: GraphBuilder, x: string, u: ExportUnit): string {
  const y = batchNorm(g, conv(g, x, u.conv), u.bn);
  if (!u.act) return y;
  return actQuant(g, g.node('Relu', [y], `${u.act.name}.relu`), u.act);
}

function attribute(name: string, v: Attribute): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof v === 'number') return a.int(3, v).int(20, AttributeType.INT);
  if (typeof v === 'string') return a.string(4, v).int(20, AttributeType.STRING);
  if (Array.isArray(v)) {
    for (const i of v) a.int(8, i);
    return a.int(20, AttributeType.INTS);
  }
  return a.float(2, v.float).int(20, AttributeType.FLOAT);
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().int(1, elemType).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

export interface OnnxOptions {
  /** Per-channel normalization the input expects, recorded in the metadata. */
  normalization?: { mean: readonly number[]; std: readonly number[] };
  /** Extra metadata_props entries. */
  metadata?: Record<string, string>;
}

/** The ONNX ModelProto (serialized) of a captured backbone; see the module comment. */
export function toOnnx(model: ExportModel, opts: OnnxOptions = {}): Uint8Array {
  const g = new GraphBuilder();
  let x = unit(g, 'input', model.stem);
  for (const b of model.blocks) {
    const input = x;
    let y = input;
    for (const u of b.path) y = unit(g, y, u);
    const shortcut = b.downsample ? unit(g, input, b.downsample) : input;
    const sum = g.node('Add', [y, shortcut], `${b.name}.add`);
    x = actQuant(g, g.node('Relu', [sum], `${b.out.name}.relu`), b.out);
  }
  const pooled = g.node('GlobalAveragePool', [x], 'pool');
  const features = g.node('Flatten', [pooled], 'features', { axis: 1 });
  const outputs = [valueInfo('features', DataType.FLOAT, ['N', model.featureDim])];
  if (model.head) {
    const h = model.head;
    const w = g.floats('head.weight', [h.outFeatures, model.featureDim], h.weight);
    const inputs = [features, w];
    if (h.bias) inputs.push(g.floats('head.bias', [h.outFeatures], h.bias));
    g.node('Gemm', inputs, 'logits', { transB: 1 });
    outputs.push(valueInfo('logits', DataType.FLOAT, ['N', h.outFeatures]));
  }

  const graph = new ProtoWriter();
  for (const n of g.nodes) {
    const node = new ProtoWriter();
    for (const i of n.inputs) node.string(1, i);
    for (const o of n.outputs) node.string(2, o);
    node.string(3, n.name).string(4, n.op);
    for (const [k, v] of Object.entries(n.attributes)) node.message(5, attribute(k, v));
    graph.message(1, node);
  }
  graph.string(2, `ssql-webgpu ResNet ${model.setting.name}`);
  for (const t of g.initializers) {
    const tensor = new ProtoWriter();
    for (const d of t.dims) tensor.int(1, d);
    tensor.int(2, t.dataType).string(8, t.name).bytes(9, t.raw);
    graph.message(5, tensor);
  }
  graph.message(11, valueInfo('input', DataType.FLOAT, ['N', model.inChannels, 'H', 'W']));
  for (const o of outputs) graph.message(12, o);

  const metadata: Record<string, string> = {
    setting: model.setting.name,
    weight_bits: String(model.setting.wbit),
    activation_bits: String(model.setting.abit),
    quantization: 'SSQL (docs/method.md#quantizer-arithmetic): weights symmetric per output channel, activations asymmetric per tensor (calibrated min/max); stem 8w8a',
    ...(opts.normalization ? { input_mean: JSON.stringify(opts.normalization.mean), input_std: JSON.stringify(opts.normalization.std) } : {}),
    ...opts.metadata,
  };
  const m = new ProtoWriter()
    .int(1, IR_VERSION)
    .string(2, 'ssql-webgpu')
    .string(3, '1')
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, '').int(2, ONNX_OPSET));
  for (const [k, v] of Object.entries(metadata)) m.message(14, new ProtoWriter().string(1, k).string(2, v));
  return m.finish();
}
