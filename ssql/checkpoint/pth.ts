// PyTorch checkpoints (.pth, .pth.tar: what torch.save writes) read without Python, platform
// independent. The file is a zip archive (./zip.ts) holding `<name>/data.pkl`, a pickle of the
// saved object whose tensors refer by persistent id to raw little-endian storages
// `<name>/data/<key>`. The pickle is interpreted by ./pickle.ts, which executes nothing and
// allows only these globals: collections.OrderedDict, torch._utils._rebuild_tensor_v2 (and its
// older form _rebuild_tensor), torch._utils._rebuild_parameter, and the storage type markers
// (torch.FloatStorage ... torch.UntypedStorage). Any other global is refused with its name.
//
// Tensors come out as safetensors-style values with their views resolved (storage offset and
// strides honoured, so views sharing one storage each get their own contiguous copy):
// float16, bfloat16, float32 and float64 become F32 (the engine's float type; exact except
// float64's extra precision), int64 stays I64, int32/int16/int8 become I32, uint8 and bool U8.
import { CheckpointFormatError } from '../format-error.ts';
import type { SafeTensor } from './safetensors.ts';
import { PickleError, PyDict, isPickleObject, pickleTypeName, unpickle } from './pickle.ts';
import type { PickleGlobal, PickleObject, PickleValue } from './pickle.ts';
import { ZipArchive, ZipFormatError, looksLikeZip } from './zip.ts';

export interface PthCheckpoint {
  /** The state dict's tensors by key, in the file's order (nested dicts inside it joined with '.'). */
  tensors: Record<string, SafeTensor>;
  /** Where the state dict was found: '' for the saved object itself, else its key, e.g. 'state_dict'. */
  stateDictPath: string;
  /** Tensors elsewhere in the file (e.g. 'optimizer.state.0.momentum_buffer'), not converted. */
  otherTensors: string[];
  /** Plain values outside the state dict by dotted path, e.g. 'epoch' -> 200, 'arch' -> 'cifar_resnet18'. */
  values: Record<string, string | number | boolean | null>;
}

/** Keys under which training scripts save the model's state dict next to other things. */
export const STATE_DICT_KEYS = ['state_dict', 'model', 'model_state_dict', 'net', 'network', 'module'] as const;

type OutDType = 'F32' | 'I64' | 'I32' | 'U8';

interface StorageKind {
  /** Bytes per element in the file. */
  width: number;
  out: OutDType;
  /** Element i of a little-endian storage as a number (floats) or bigint (int64). */
  read(view: DataView, i: number): number | bigint;
}

function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? Number.NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const bf16Scratch = new DataView(new ArrayBuffer(4));
function bfloat16(bits: number): number {
  bf16Scratch.setUint32(0, bits << 16, true);
  return bf16Scratch.getFloat32(0, true);
}

const STORAGE_KINDS: Record<string, StorageKind> = {
  FloatStorage: { width: 4, out: 'F32', read: (v, i) => v.getFloat32(i * 4, true) },
  DoubleStorage: { width: 8, out: 'F32', read: (v, i) => v.getFloat64(i * 8, true) },
  HalfStorage: { width: 2, out: 'F32', read: (v, i) => half(v.getUint16(i * 2, true)) },
  BFloat16Storage: { width: 2, out: 'F32', read: (v, i) => bfloat16(v.getUint16(i * 2, true)) },
  LongStorage: { width: 8, out: 'I64', read: (v, i) => v.getBigInt64(i * 8, true) },
  IntStorage: { width: 4, out: 'I32', read: (v, i) => v.getInt32(i * 4, true) },
  ShortStorage: { width: 2, out: 'I32', read: (v, i) => v.getInt16(i * 2, true) },
  CharStorage: { width: 1, out: 'I32', read: (v, i) => v.getInt8(i) },
  ByteStorage: { width: 1, out: 'U8', read: (v, i) => v.getUint8(i) },
  BoolStorage: { width: 1, out: 'U8', read: (v, i) => v.getUint8(i) },
  // torch.save of a bare torch.UntypedStorage (PyTorch 2): bytes.
  UntypedStorage: { width: 1, out: 'U8', read: (v, i) => v.getUint8(i) },
};

const OUT_WIDTH: Record<OutDType, number> = { F32: 4, I64: 8, I32: 4, U8: 1 };

interface StorageType extends PickleGlobal {
  readonly kind: StorageKind;
  readonly storageName: string;
}

interface StorageRef extends PickleObject {
  readonly pickleType: 'storage';
  readonly kind: StorageKind;
  readonly storageName: string;
  readonly key: string;
  readonly numel: number;
}

interface TensorRef extends PickleObject {
  readonly pickleType: 'tensor';
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
}

function isTensor(v: PickleValue | undefined): v is TensorRef & PickleValue {
  return isPickleObject(v) && v.pickleType === 'tensor';
}

function intTuple(v: PickleValue, what: string, offset: number): number[] {
  if (!Array.isArray(v)) throw new PickleError(`pickle offset ${offset}: tensor ${what} is a ${pickleTypeName(v)}, not a tuple`);
  return v.map((d) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) throw new PickleError(`pickle offset ${offset}: tensor ${what} (${v.map(String).join(', ')}) holds ${String(d)}, not a non-negative integer`);
    return d;
  });
}

function rebuildTensor(args: readonly PickleValue[], offset: number): TensorRef {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  // _rebuild_tensor(storage, storage_offset, size, stride)
  const [storage, storageOffset, size, stride] = args;
  if (!isPickleObject(storage) || storage.pickleType !== 'storage') throw new PickleError(`pickle offset ${offset}: tensor rebuilt from a ${pickleTypeName(storage)}, not a storage`);
  if (typeof storageOffset !== 'number' || !Number.isInteger(storageOffset) || storageOffset < 0) throw new PickleError(`pickle offset ${offset}: tensor storage offset ${String(storageOffset)} is not a non-negative integer`);
  const shape = intTuple(size, 'size', offset);
  const strides = intTuple(stride, 'stride', offset);
  if (shape.length !== strides.length) throw new PickleError(`pickle offset ${offset}: tensor size (${shape.join(', ')}) and stride (${strides.join(', ')}) differ in length`);
  return { pickleType: 'tensor', storage: storage as StorageRef, offset: storageOffset, shape, stride: strides };
}

function makeGlobals(): Map<string, PickleGlobal> {
  const g = new Map<string, PickleGlobal>();
  const fn = (name: string, call: PickleGlobal['call']) => g.set(name, { pickleType: 'global', name, call });
  fn('torch._utils._rebuild_tensor_v2', (args, offset) => rebuildTensor(args, offset));
  fn('torch._utils._rebuild_tensor', (args, offset) => rebuildTensor(args, offset));
  fn('torch._utils._rebuild_parameter', (args, offset) => {
    // _rebuild_parameter(data, requires_grad, backward_hooks): the parameter's tensor.
    if (!isTensor(args[0])) throw new PickleError(`pickle offset ${offset}: parameter rebuilt from a ${pickleTypeName(args[0])}, not a tensor`);
    return args[0];
  });
  for (const [storageName, kind] of Object.entries(STORAGE_KINDS)) {
    const t: StorageType = { pickleType: 'global', name: `torch.${storageName}`, kind, storageName };
    g.set(t.name, t);
  }
  return g;
}

const GLOBALS = makeGlobals();

function findPickle(zip: ZipArchive, source: string): string {
  const names = zip.names();
  const pickles = names.filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length === 1) return pickles[0].slice(0, -'data.pkl'.length);
  if (pickles.length > 1) throw new CheckpointFormatError(`${source}: ${pickles.length} data.pkl records (${pickles.join(', ')}): not one torch.save archive`);
  if (names.some((n) => /(^|\/)constants\.pkl$/.test(n) || /(^|\/)code\//.test(n))) {
    throw new CheckpointFormatError(`${source}: a TorchScript archive (torch.jit.save), which holds code, not a state dict: save the model's state_dict() with torch.save instead`);
  }
  throw new CheckpointFormatError(`${source}: a zip archive without <name>/data.pkl (it has ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}): not written by torch.save`);
}

/** Read a torch.save file; see PthCheckpoint for what comes back. */
export function readPth(bytes: Uint8Array, source = 'checkpoint.pth'): PthCheckpoint {
  if (!looksLikeZip(bytes)) {
    if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) {
      throw new CheckpointFormatError(`${source}: the legacy torch.save format (PyTorch before 1.6, or _use_new_zipfile_serialization=False), which is not supported: load and save it again with PyTorch 1.6 or later`);
    }
    throw new CheckpointFormatError(`${source}: not a PyTorch checkpoint (a torch.save file is a zip archive, starting with 'PK'; this starts with ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ') || 'nothing'})`);
  }
  let zip: ZipArchive;
  try {
    zip = new ZipArchive(bytes, source);
  } catch (e) {
    if (e instanceof ZipFormatError) throw new CheckpointFormatError(e.message);
    throw e;
  }
  const prefix = findPickle(zip, source);
  const byteorder = zip.has(`${prefix}byteorder`) ? new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim() : 'little';
  if (byteorder !== 'little') throw new CheckpointFormatError(`${source}: saved on a ${byteorder}-endian machine; only little-endian checkpoints are read`);

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PickleValue, offset: number): PickleValue => {
    // ('storage', storage_type, key, location, numel)
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw new PickleError(`pickle offset ${offset}: persistent id ${pickleTypeName(pid)} is not a torch storage reference`);
    const [, type, key, , numel] = pid;
    if (!isPickleObject(type) || !('kind' in type)) throw new PickleError(`pickle offset ${offset}: storage type ${pickleTypeName(type)} is not a torch storage type`);
    if (typeof key !== 'string' || typeof numel !== 'number' || !Number.isInteger(numel) || numel < 0) throw new PickleError(`pickle offset ${offset}: malformed storage reference (key ${String(key)}, ${String(numel)} elements)`);
    const st = type as StorageType;
    const known = storages.get(key);
    if (known) {
      if (known.kind !== st.kind) throw new PickleError(`pickle offset ${offset}: storage ${key} is referenced as ${known.storageName} and as ${st.storageName}`);
      return known;
    }
    const ref: StorageRef = { pickleType: 'storage', kind: st.kind, storageName: st.storageName, key, numel };
    storages.set(key, ref);
    return ref;
  };

  let root: PickleValue;
  try {
    root = unpickle(zip.read(`${prefix}data.pkl`), { source: `${source} (${prefix}data.pkl)`, globals: GLOBALS, persistentLoad });
  } catch (e) {
    if (e instanceof PickleError || e instanceof ZipFormatError) throw new CheckpointFormatError(e.message);
    throw e;
  }
  if (!(root instanceof PyDict)) throw new CheckpointFormatError(`${source}: the saved object is a ${pickleTypeName(root)}, not a dict (a state dict, or a dict holding one)`);

  const stateKey = STATE_DICT_KEYS.find((k) => {
    const v = root.get(k);
    return v instanceof PyDict && [...walk(v, '')].some(([, x]) => isTensor(x));
  });
  const stateDict = stateKey ? root.get(stateKey) as PyDict : root;
  const tensors: Record<string, SafeTensor> = {};
  const otherTensors: string[] = [];
  const values: Record<string, string | number | boolean | null> = {};
  const storageBytes = new Map<string, Uint8Array>();
  const storageData = (s: StorageRef): Uint8Array => {
    let data = storageBytes.get(s.key);
    if (!data) {
      const name = `${prefix}data/${s.key}`;
      if (!zip.has(name)) throw new CheckpointFormatError(`${source}: storage ${s.key} (${s.storageName}) has no record ${name} in the archive`);
      try {
        data = zip.read(name);
      } catch (e) {
        if (e instanceof ZipFormatError) throw new CheckpointFormatError(e.message);
        throw e;
      }
      if (data.length !== s.numel * s.kind.width) throw new CheckpointFormatError(`${source}: storage ${name} holds ${data.length} bytes, ${s.numel} elements of ${s.storageName} need ${s.numel * s.kind.width}`);
      storageBytes.set(s.key, data);
    }
    return data;
  };
  for (const [path, v] of walk(root, '')) {
    const inState = stateKey === undefined || path === stateKey || path.startsWith(`${stateKey}.`);
    const key = stateKey === undefined ? path : path.slice(stateKey.length + 1);
    if (isTensor(v)) {
      if (inState) tensors[key] = materialize(v, storageData(v.storage), `${source}: tensor '${path}'`);
      else otherTensors.push(path);
    } else if (!inState && (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) {
      values[path] = v;
    } else if (!inState && typeof v === 'bigint') {
      values[path] = v.toString();
    }
  }
  return { tensors, stateDictPath: stateKey ?? '', otherTensors, values };
}

/** Leaves of nested dicts, lists and tuples with their dotted paths (dict keys as strings). */
function* walk(v: PickleValue, path: string): Generator<[string, PickleValue]> {
  const join = (k: string) => (path ? `${path}.${k}` : k);
  if (v instanceof PyDict) {
    for (const [k, x] of v.map) yield* walk(x, join(String(Array.isArray(k) ? k.join(',') : k)));
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) yield* walk(v[i], join(String(i)));
  } else {
    yield [path, v];
  }
}

/** The tensor's elements in row-major order, converted to its output dtype. */
function materialize(t: TensorRef, data: Uint8Array, what: string): SafeTensor {
  const { kind } = t.storage;
  const count = t.shape.reduce((n, d) => n * d, 1);
  const out: SafeTensor = { dtype: kind.out, shape: [...t.shape], data: new Uint8Array(count * OUT_WIDTH[kind.out]) };
  if (count === 0) return out;
  const last = t.offset + t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i], 0);
  if (last >= t.storage.numel) {
    throw new CheckpointFormatError(`${what}: size (${t.shape.join(', ')}) with stride (${t.stride.join(', ')}) at offset ${t.offset} reaches element ${last} of a storage of ${t.storage.numel}: corrupt`);
  }
  const src = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const dst = new DataView(out.data.buffer);
  const write: (i: number, v: number | bigint) => void = {
    F32: (i: number, v: number | bigint) => dst.setFloat32(i * 4, v as number, true),
    I64: (i: number, v: number | bigint) => dst.setBigInt64(i * 8, v as bigint, true),
    I32: (i: number, v: number | bigint) => dst.setInt32(i * 4, v as number, true),
    U8: (i: number, v: number | bigint) => dst.setUint8(i, v as number),
  }[kind.out];
  const contiguous = t.stride.every((s, i) => t.shape[i] === 1 || s === t.shape.slice(i + 1).reduce((n, d) => n * d, 1));
  if (contiguous && kind.width === OUT_WIDTH[kind.out]) {
    out.data.set(data.subarray(t.offset * kind.width, (t.offset + count) * kind.width));
    return out;
  }
  // Odometer over the index space, tracking the storage position.
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let pos = t.offset;
  for (let i = 0; i < count; i++) {
    write(i, kind.read(src, pos));
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      pos += t.stride[d];
      if (idx[d] < t.shape[d]) break;
      pos -= t.stride[d] * t.shape[d];
      idx[d] = 0;
    }
  }
  return out;
}
