// A reference reader and interpreter for the ONNX models that ssql/export/onnx.ts writes,
// written from the ONNX operator specifications (opset 13), for tests: it decodes the
// protobuf independently of the writer and runs the graph on the CPU (float64 sums, every
// tensor rounded to float32 as a runtime stores it). Only the operators the exporter uses.
// It stands in for onnxruntime, which is not a dependency.

type Field = bigint | number | Uint8Array;

/** Fields of one protobuf message by number (wire types 0, 2, 5; 1 and others refused). */
function decodeMessage(buf: Uint8Array): Map<number, Field[]> {
  const fields = new Map<number, Field[]>();
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('protobuf: truncated varint');
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    let value: Field;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const n = Number(varint());
      if (pos + n > buf.length) throw new Error('protobuf: truncated bytes');
      value = buf.subarray(pos, pos + n);
      pos += n;
    } else if (wire === 5) {
      value = view.getFloat32(pos, true);
      pos += 4;
    } else throw new Error(`protobuf: wire type ${wire} not expected in these models`);
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}

const text = (f: Field | undefined) => (f instanceof Uint8Array ? new TextDecoder().decode(f) : '');
const int = (f: Field | undefined) => (typeof f === 'bigint' ? Number(BigInt.asIntN(64, f)) : 0);

export interface OnnxTensor {
  dims: number[];
  /** ONNX data type (1 float, 2 uint8, 3 int8). */
  type: number;
  data: Float64Array;
}

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes: Map<string, number | number[]>;
}

export interface OnnxModel {
  irVersion: number;
  opset: number;
  nodes: OnnxNode[];
  initializers: Map<string, OnnxTensor>;
  inputs: { name: string; dims: (number | string)[] }[];
  outputs: { name: string; dims: (number | string)[] }[];
  metadata: Map<string, string>;
}

function decodeTensor(buf: Uint8Array): [string, OnnxTensor] {
  const f = decodeMessage(buf);
  const dims = (f.get(1) ?? []).map(int);
  const type = int(f.get(2)?.[0]);
  const raw = f.get(9)?.[0] as Uint8Array;
  const n = dims.reduce((a, b) => a * b, 1);
  const copy = new Uint8Array(raw);
  let data: ArrayLike<number>;
  if (type === 1) data = new Float32Array(copy.buffer);
  else if (type === 2) data = copy;
  else if (type === 3) data = new Int8Array(copy.buffer);
  else throw new Error(`tensor type ${type} not expected`);
  if (data.length !== n) throw new Error(`initializer ${text(f.get(8)?.[0])}: ${data.length} values for dims [${dims}]`);
  return [text(f.get(8)?.[0]), { dims, type, data: Float64Array.from(data) }];
}

function decodeValueInfo(buf: Uint8Array): { name: string; dims: (number | string)[] } {
  const f = decodeMessage(buf);
  const tensorType = decodeMessage(decodeMessage(f.get(2)![0] as Uint8Array).get(1)![0] as Uint8Array);
  const shape = decodeMessage(tensorType.get(2)![0] as Uint8Array);
  const dims = (shape.get(1) ?? []).map((d) => {
    const dm = decodeMessage(d as Uint8Array);
    return dm.has(1) ? int(dm.get(1)![0]) : text(dm.get(2)![0]);
  });
  return { name: text(f.get(1)?.[0]), dims };
}

export function decodeOnnx(bytes: Uint8Array): OnnxModel {
  const m = decodeMessage(bytes);
  const g = decodeMessage(m.get(7)![0] as Uint8Array);
  const opsets = (m.get(8) ?? []).map((o) => decodeMessage(o as Uint8Array));
  const nodes = (g.get(1) ?? []).map((nb) => {
    const n = decodeMessage(nb as Uint8Array);
    const attributes = new Map<string, number | number[]>();
    for (const ab of n.get(5) ?? []) {
      const a = decodeMessage(ab as Uint8Array);
      const type = int(a.get(20)?.[0]);
      const name = text(a.get(1)?.[0]);
      if (type === 1) attributes.set(name, a.get(2)![0] as number);
      else if (type === 2) attributes.set(name, int(a.get(3)![0]));
      else if (type === 7) attributes.set(name, (a.get(8) ?? []).map(int));
      else throw new Error(`attribute ${name} of type ${type} not expected`);
    }
    return { op: text(n.get(4)?.[0]), inputs: (n.get(1) ?? []).map(text), outputs: (n.get(2) ?? []).map(text), attributes };
  });
  return {
    irVersion: int(m.get(1)?.[0]),
    opset: int(opsets.find((o) => text(o.get(1)?.[0]) === '')?.get(2)?.[0]),
    nodes,
    initializers: new Map((g.get(5) ?? []).map((t) => decodeTensor(t as Uint8Array))),
    inputs: (g.get(11) ?? []).map((v) => decodeValueInfo(v as Uint8Array)),
    outputs: (g.get(12) ?? []).map((v) => decodeValueInfo(v as Uint8Array)),
    metadata: new Map((m.get(14) ?? []).map((e) => {
      const kv = decodeMessage(e as Uint8Array);
      return [text(kv.get(1)?.[0]), text(kv.get(2)?.[0])];
    })),
  };
}

const f32 = Math.fround;

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function tensor(dims: number[], type = 1): OnnxTensor {
  return { dims, type, data: new Float64Array(dims.reduce((a, b) => a * b, 1)) };
}

function scalarOf(t: OnnxTensor): number {
  if (t.data.length !== 1) throw new Error(`expected a scalar, got dims [${t.dims}]`);
  return t.data[0];
}

type Op = (inputs: OnnxTensor[], attrs: Map<string, number | number[]>) => OnnxTensor;

const OPS: Record<string, Op> = {
  DequantizeLinear([x, scale, zp], attrs) {
    const y = tensor(x.dims);
    const axis = (attrs.get('axis') as number | undefined) ?? 1;
    const perAxis = scale.data.length > 1 || scale.dims.length === 1;
    const inner = perAxis ? x.dims.slice(axis + 1).reduce((a, b) => a * b, 1) : 1;
    const channels = perAxis ? x.dims[axis] : 1;
    for (let i = 0; i < x.data.length; i++) {
      const c = perAxis ? Math.floor(i / inner) % channels : 0;
      y.data[i] = f32((x.data[i] - (zp ? zp.data[c] : 0)) * scale.data[c]);
    }
    return y;
  },
  QuantizeLinear([x, scale, zp]) {
    if (!zp || zp.type !== 2) throw new Error('QuantizeLinear: only UINT8 zero points are expected');
    const y = tensor(x.dims, 2);
    const s = scalarOf(scale);
    const z = scalarOf(zp);
    for (let i = 0; i < x.data.length; i++) y.data[i] = Math.min(255, Math.max(0, roundHalfEven(f32(x.data[i] / s)) + z));
    return y;
  },
  Clip([x, lo, hi]) {
    const y = tensor(x.dims);
    const a = scalarOf(lo);
    const b = scalarOf(hi);
    for (let i = 0; i < x.data.length; i++) y.data[i] = Math.min(b, Math.max(a, x.data[i]));
    return y;
  },
  Conv([x, w], attrs) {
    const [N, C, H, W] = x.dims;
    const [O, I, KH, KW] = w.dims;
    if (I !== C || (attrs.get('group') ?? 1) !== 1) throw new Error('Conv: channel mismatch or groups');
    const [sh, sw] = attrs.get('strides') as number[];
    const [pt, pl, pb, pr] = attrs.get('pads') as number[];
    const OH = Math.floor((H + pt + pb - KH) / sh) + 1;
    const OW = Math.floor((W + pl + pr - KW) / sw) + 1;
    const y = tensor([N, O, OH, OW]);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
      let acc = 0;
      for (let c = 0; c < C; c++) for (let kh = 0; kh < KH; kh++) {
        const ih = oh * sh - pt + kh;
        if (ih < 0 || ih >= H) continue;
        for (let kw = 0; kw < KW; kw++) {
          const iw = ow * sw - pl + kw;
          if (iw < 0 || iw >= W) continue;
          acc += x.data[((n * C + c) * H + ih) * W + iw] * w.data[((o * C + c) * KH + kh) * KW + kw];
        }
      }
      y.data[((n * O + o) * OH + oh) * OW + ow] = f32(acc);
    }
    return y;
  },
  BatchNormalization([x, scale, bias, mean, variance], attrs) {
    const eps = f32(attrs.get('epsilon') as number);
    const y = tensor(x.dims);
    const C = x.dims[1];
    const inner = x.dims.slice(2).reduce((a, b) => a * b, 1);
    for (let i = 0; i < x.data.length; i++) {
      const c = Math.floor(i / inner) % C;
      y.data[i] = f32(((x.data[i] - mean.data[c]) / Math.sqrt(variance.data[c] + eps)) * scale.data[c] + bias.data[c]);
    }
    return y;
  },
  Relu([x]) {
    const y = tensor(x.dims);
    for (let i = 0; i < x.data.length; i++) y.data[i] = Math.max(0, x.data[i]);
    return y;
  },
  Add([a, b]) {
    if (a.dims.join() !== b.dims.join()) throw new Error(`Add: [${a.dims}] + [${b.dims}] (no broadcasting expected)`);
    const y = tensor(a.dims);
    for (let i = 0; i < a.data.length; i++) y.data[i] = f32(a.data[i] + b.data[i]);
    return y;
  },
  GlobalAveragePool([x]) {
    const [N, C] = x.dims;
    const inner = x.dims.slice(2).reduce((a, b) => a * b, 1);
    const y = tensor([N, C, ...x.dims.slice(2).map(() => 1)]);
    for (let i = 0; i < N * C; i++) {
      let s = 0;
      for (let j = 0; j < inner; j++) s += x.data[i * inner + j];
      y.data[i] = f32(s / inner);
    }
    return y;
  },
  Flatten([x], attrs) {
    const axis = (attrs.get('axis') as number | undefined) ?? 1;
    const outer = x.dims.slice(0, axis).reduce((a, b) => a * b, 1);
    return { dims: [outer, x.data.length / outer], type: x.type, data: x.data };
  },
  Gemm([a, b, c], attrs) {
    if (attrs.get('transB') !== 1 || attrs.get('transA')) throw new Error('Gemm: only transB = 1 expected');
    const [M, K] = a.dims;
    const [Nn] = b.dims;
    const y = tensor([M, Nn]);
    for (let m = 0; m < M; m++) for (let n = 0; n < Nn; n++) {
      let acc = c ? c.data[n] : 0;
      for (let k = 0; k < K; k++) acc += a.data[m * K + k] * b.data[n * K + k];
      y.data[m * Nn + n] = f32(acc);
    }
    return y;
  },
};

/** Run the graph on `inputs` (by name) and return every graph output by name. */
export function runOnnx(model: OnnxModel, inputs: Record<string, OnnxTensor>): Record<string, OnnxTensor> {
  const values = new Map<string, OnnxTensor>(model.initializers);
  for (const [k, v] of Object.entries(inputs)) values.set(k, { ...v, data: v.data.map(f32) });
  for (const node of model.nodes) {
    const op = OPS[node.op];
    if (!op) throw new Error(`operator ${node.op} is not in the reference interpreter`);
    const args = node.inputs.map((name) => {
      const v = values.get(name);
      if (!v) throw new Error(`${node.op} '${node.outputs[0]}': input '${name}' is not defined yet (graph not in topological order?)`);
      return v;
    });
    values.set(node.outputs[0], op(args, node.attributes));
  }
  return Object.fromEntries(model.outputs.map((o) => [o.name, values.get(o.name)!]));
}
