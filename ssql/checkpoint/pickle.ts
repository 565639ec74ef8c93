// A safe reader of Python pickles, for the subset that PyTorch state dicts use: protocol 2
// (torch.save's default) and the plain-data opcodes of protocols 3-5. It is an interpreter of
// the pickle stack machine that builds plain JavaScript values and never runs anything from
// the file: a GLOBAL (a reference to a Python callable or class) is looked up in a table of
// allowed names given by the caller, each with a JavaScript stand-in, and any other name is
// refused with an error naming it (pickles can call arbitrary functions, e.g. os.system, so
// this table is the whole of what a checkpoint may do). Platform independent.
//
// Values: None -> null; bool -> boolean; int -> number (bigint beyond 2^53); float -> number;
// str -> string; bytes -> Uint8Array; list -> array; tuple -> frozen array; dict and
// collections.OrderedDict -> PyDict (insertion-ordered); results of allowed callables and
// persistent ids -> whatever the caller's stand-ins return (objects with a `pickleType`).

export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

/** An object produced by an allowed global or a persistent id (tensors, storages ...). */
export interface PickleObject {
  readonly pickleType: string;
}

export type PickleValue = null | boolean | number | bigint | string | Uint8Array | PickleValue[] | PyDict | PickleObject;

/** A Python dict (or OrderedDict): keys and values in insertion order. */
export class PyDict implements PickleObject {
  readonly pickleType = 'dict';
  readonly map = new Map<PickleValue, PickleValue>();
  /** Instance attributes set by BUILD (nn.Module.state_dict() attaches `_metadata`). */
  attributes: PickleValue = null;

  get(key: string): PickleValue | undefined {
    return this.map.get(key);
  }
}

/** A reference to a Python global: a class or function, callable by REDUCE only if `call` is
 * given (storage type markers, for instance, are only compared, never called). */
export interface PickleGlobal extends PickleObject {
  readonly pickleType: 'global';
  /** 'module.name', e.g. 'torch._utils._rebuild_tensor_v2'. */
  readonly name: string;
  call?(args: readonly PickleValue[], offset: number): PickleValue;
}

export interface PickleOptions {
  /** Names the file in errors. */
  source?: string;
  /** Allowed globals by 'module.name' (collections.OrderedDict is always allowed). */
  globals?: ReadonlyMap<string, PickleGlobal>;
  /** Resolves BINPERSID (torch.save's storage references); without it they are refused. */
  persistentLoad?(pid: PickleValue, offset: number): PickleValue;
}

export const ORDERED_DICT: PickleGlobal = {
  pickleType: 'global',
  name: 'collections.OrderedDict',
  call(args, offset) {
    const d = new PyDict();
    if (args.length === 0) return d;
    const items = args[0];
    if (args.length !== 1 || !Array.isArray(items)) throw new PickleError(`pickle offset ${offset}: OrderedDict(...) takes nothing or one list of (key, value) pairs`);
    for (const pair of items) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new PickleError(`pickle offset ${offset}: OrderedDict(...) item is not a (key, value) pair`);
      d.map.set(pair[0], pair[1]);
    }
    return d;
  },
};

export function isPickleObject(v: unknown): v is PickleObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && typeof (v as PickleObject).pickleType === 'string';
}

/** A short description of a value's type, for error messages. */
export function pickleTypeName(v: PickleValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (isPickleObject(v)) return v.pickleType === 'global' ? `global ${(v as PickleGlobal).name}` : v.pickleType;
  return typeof v;
}

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

/** Interpret `bytes` as one pickle and return its value (see the module comment). */
export function unpickle(bytes: Uint8Array, opts: PickleOptions = {}): PickleValue {
  return new Unpickler(bytes, opts).run();
}

class Unpickler {
  private pos = 0;
  private readonly view: DataView;
  private readonly stack: PickleValue[] = [];
  /** Stack heights at each open MARK (values below the innermost one are out of reach). */
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PickleValue>();
  private readonly source: string;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });
  /** Offset of the opcode being interpreted (for errors). */
  private at = 0;

  constructor(private readonly bytes: Uint8Array, private readonly opts: PickleOptions) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.source = opts.source ?? 'pickle';
  }

  private fail(message: string): never {
    throw new PickleError(`${this.source}: pickle offset ${this.at}: ${message}`);
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.bytes.length) this.fail(`${what} needs ${n} bytes at offset ${this.pos}, the pickle has ${this.bytes.length}: truncated`);
  }

  private u8(): number { this.need(1, 'argument'); return this.bytes[this.pos++]; }
  private u16(): number { this.need(2, 'argument'); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  private u32(): number { this.need(4, 'argument'); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  private i32(): number { this.need(4, 'argument'); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  private u64(): number {
    this.need(8, 'argument');
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.bytes.length)) this.fail(`length ${v} exceeds the pickle (${this.bytes.length} bytes): corrupt`);
    return Number(v);
  }

  private take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private line(what: string): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(`${what}: no newline before the end of the pickle: truncated`);
    const s = new TextDecoder('latin1').decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private text(n: number): string {
    const raw = this.take(n, 'string');
    try {
      return this.utf8.decode(raw);
    } catch {
      return this.fail(`string of ${n} bytes is not valid UTF-8`);
    }
  }

  private push(v: PickleValue): void {
    this.stack.push(v);
  }

  private floor(): number {
    return this.marks.length ? this.marks[this.marks.length - 1] : 0;
  }

  private pop(): PickleValue {
    if (this.stack.length <= this.floor()) this.fail('stack underflow: corrupt pickle');
    return this.stack.pop() as PickleValue;
  }

  private top(): PickleValue {
    if (this.stack.length <= this.floor()) this.fail('empty stack: corrupt pickle');
    return this.stack[this.stack.length - 1];
  }

  /** The values pushed since the innermost MARK, which is closed. */
  private popMark(): PickleValue[] {
    const m = this.marks.pop();
    if (m === undefined) this.fail('no MARK to pop to: corrupt pickle');
    return this.stack.splice(m);
  }

  private global(name: string): PickleGlobal {
    if (name === ORDERED_DICT.name) return ORDERED_DICT;
    const g = this.opts.globals?.get(name);
    if (!g) {
      this.fail(`refusing GLOBAL '${name}': a checkpoint may only reference ${[ORDERED_DICT.name, ...(this.opts.globals?.keys() ?? [])].join(', ')}. `
        + 'Nothing from the file is ever executed, so other Python objects cannot be read (a whole pickled nn.Module or an argparse.Namespace, for example; save the model\'s state_dict() instead)');
    }
    return g;
  }

  private dict(v: PickleValue, op: string): PyDict {
    if (!(v instanceof PyDict)) this.fail(`${op} on a ${pickleTypeName(v)}, not a dict`);
    return v;
  }

  private list(v: PickleValue, op: string): PickleValue[] {
    if (!Array.isArray(v) || Object.isFrozen(v)) this.fail(`${op} on a ${pickleTypeName(v)}, not a list`);
    return v;
  }

  private memoGet(i: number): void {
    const v = this.memo.get(i);
    if (v === undefined) this.fail(`memo entry ${i} was never stored: corrupt pickle`);
    this.push(v);
  }

  run(): PickleValue {
    const tuple = (items: PickleValue[]) => Object.freeze(items) as PickleValue[];
    for (;;) {
      this.at = this.pos;
      if (this.pos >= this.bytes.length) this.fail('the pickle ends without STOP: truncated');
      const op = this.bytes[this.pos++];
      switch (op) {
        case 0x80: { // PROTO
          const p = this.u8();
          if (p > 5) this.fail(`pickle protocol ${p} is newer than 5`);
          break;
        }
        case 0x95: this.u64(); break; // FRAME: a length hint only
        case 0x2e: { // STOP
          const v = this.pop();
          if (this.stack.length !== 0 || this.marks.length !== 0) this.fail('values or MARKs left on the stack at STOP: corrupt pickle');
          return v;
        }
        case 0x28: this.marks.push(this.stack.length); break; // MARK
        case 0x30: this.pop(); break; // POP
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.push(this.top()); break; // DUP
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4a: this.push(this.i32()); break; // BININT
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x8a: this.push(this.long(this.u8())); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) this.fail(`LONG4 with negative length ${n}`);
          this.push(this.long(n));
          break;
        }
        case 0x47: { // BINFLOAT (big-endian)
          this.need(8, 'BINFLOAT');
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }
        case 0x58: this.push(this.text(this.u32())); break; // BINUNICODE
        case 0x8c: this.push(this.text(this.u8())); break; // SHORT_BINUNICODE
        case 0x8d: this.push(this.text(this.u64())); break; // BINUNICODE8
        case 0x55: this.push(new TextDecoder('latin1').decode(this.take(this.u8(), 'SHORT_BINSTRING'))); break;
        case 0x54: { // BINSTRING
          const n = this.i32();
          if (n < 0) this.fail(`BINSTRING with negative length ${n}`);
          this.push(new TextDecoder('latin1').decode(this.take(n, 'BINSTRING')));
          break;
        }
        case 0x42: this.push(this.take(this.u32(), 'BINBYTES').slice()); break;
        case 0x43: this.push(this.take(this.u8(), 'SHORT_BINBYTES').slice()); break;
        case 0x8e: this.push(this.take(this.u64(), 'BINBYTES8').slice()); break;
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x6c: this.push(this.popMark()); break; // LIST
        case 0x61: { // APPEND
          const v = this.pop();
          this.list(this.top(), 'APPEND').push(v);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          this.list(this.top(), 'APPENDS').push(...items);
          break;
        }
        case 0x29: this.push(tuple([])); break; // EMPTY_TUPLE
        case 0x74: { // TUPLE
          const items = this.popMark();
          this.push(tuple(items));
          break;
        }
        case 0x85: this.push(tuple([this.pop()])); break; // TUPLE1
        case 0x86: { const b = this.pop(); const a = this.pop(); this.push(tuple([a, b])); break; } // TUPLE2
        case 0x87: { const c = this.pop(); const b = this.pop(); const a = this.pop(); this.push(tuple([a, b, c])); break; } // TUPLE3
        case 0x7d: this.push(new PyDict()); break; // EMPTY_DICT
        case 0x64: { // DICT
          const items = this.popMark();
          const d = new PyDict();
          this.setItems(d, items);
          this.push(d);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.dict(this.top(), 'SETITEM').map.set(k, v);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.dict(this.top(), 'SETITEMS'), items);
          break;
        }
        case 0x63: { // GLOBAL
          const module = this.line('GLOBAL module');
          const name = this.line('GLOBAL name');
          this.push(this.global(`${module}.${name}`));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
          this.push(this.global(`${module}.${name}`));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const fn = this.pop();
          if (!Array.isArray(args)) this.fail(`REDUCE with ${pickleTypeName(args)} arguments, not a tuple`);
          this.push(this.call(fn, args));
          break;
        }
        case 0x81: { // NEWOBJ: cls.__new__(cls, *args); only OrderedDict, the one allowed class
          const args = this.pop();
          const cls = this.pop();
          if (cls !== ORDERED_DICT || !Array.isArray(args) || args.length !== 0) this.fail(`NEWOBJ of ${pickleTypeName(cls)} is not supported`);
          this.push(new PyDict());
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          const target = this.top();
          if (target instanceof PyDict) target.attributes = state;
          else this.fail(`BUILD (setting the state of an object) on a ${pickleTypeName(target)} is not supported`);
          break;
        }
        case 0x51: { // BINPERSID
          const pid = this.pop();
          if (!this.opts.persistentLoad) this.fail('persistent id (an external object reference) without a loader');
          this.push(this.opts.persistentLoad(pid, this.at));
          break;
        }
        case 0x71: this.memo.set(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.memo.set(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.memo.set(this.memo.size, this.top()); break; // MEMOIZE
        case 0x68: this.memoGet(this.u8()); break; // BINGET
        case 0x6a: this.memoGet(this.u32()); break; // LONG_BINGET
        default:
          this.fail(`opcode 0x${op.toString(16).padStart(2, '0')} (${OPCODE_NAMES[op] ?? 'unknown'}) is not supported in a checkpoint`);
      }
    }
  }

  private setItems(d: PyDict, items: PickleValue[]): void {
    if (items.length % 2 !== 0) this.fail(`odd number of items (${items.length}) for a dict`);
    for (let i = 0; i < items.length; i += 2) d.map.set(items[i], items[i + 1]);
  }

  private call(fn: PickleValue, args: readonly PickleValue[]): PickleValue {
    if (!isPickleObject(fn) || fn.pickleType !== 'global') this.fail(`REDUCE on a ${pickleTypeName(fn)}, which is not callable`);
    const g = fn as PickleGlobal;
    if (!g.call) this.fail(`'${g.name}' is allowed only as a type marker, not as a call`);
    try {
      return g.call(args, this.at);
    } catch (e) {
      if (e instanceof PickleError) throw new PickleError(`${this.source}: ${e.message}`);
      throw e;
    }
  }

  /** Little-endian two's complement integer of n bytes. */
  private long(n: number): number | bigint {
    const raw = this.take(n, 'LONG');
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]);
    if (raw[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
}
