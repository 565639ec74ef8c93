// Tensors: a shape and dtype over pooled GPU storage. Views (reshape, detach) share storage,
// counted by references; storage returns to the pool when its last tensor is disposed.
import { engine } from './device.ts';
import { trackInScope, untrack } from './scope.ts';
import type { TapeNode } from './autograd.ts';
import { backward as runBackward } from './autograd.ts';
import { fill, poisonIfUnwritten } from './launch.ts';
import { checkShape, resolveShape, shapeString, sizeOf } from './shapes.ts';
import type { Shape } from './shapes.ts';

export type DType = 'f32' | 'i32' | 'u32';
export type TypedArrayFor<D extends DType> = D extends 'f32' ? Float32Array : D extends 'i32' ? Int32Array : Uint32Array;

const BYTES_PER_ELEMENT = 4;

class Storage {
  refs = 1;
  /** Tensors computed from this storage's contents and kept for reuse (`Tensor.derived`): freed
   * when a kernel writes the storage or the storage is released. */
  derived: Map<string, Tensor> | null = null;
  constructor(readonly buffer: GPUBuffer, readonly bytes: number) {}
  retain(): this {
    this.refs++;
    return this;
  }
  release(fromFinalizer = false): void {
    if (--this.refs > 0) return;
    this.dropDerived();
    engine().pool.release(this.buffer, fromFinalizer);
  }
  dropDerived(): void {
    if (!this.derived) return;
    for (const t of this.derived.values()) {
      engine().pool.derivedBytes -= t.buffer.size;
      t.dispose();
    }
    this.derived = null;
  }
}

// A safety net: storage of tensors that were never disposed goes back to the pool when the
// tensor object is garbage-collected. Explicit dispose()/scope() remain the way to free memory.
const finalizer = new FinalizationRegistry<Storage>((storage) => storage.release(true));

let nextId = 1;

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  name?: string;
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
  /** Leaf tensors with requiresGrad collect gradients in `.grad` on backward(). */
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** The tape entry that produced this tensor (null for leaves and under noGrad). */
  node: TapeNode | null = null;
  name: string | undefined;
  private storage: Storage | null;

  private constructor(storage: Storage, shape: Shape, dtype: DType, requiresGrad: boolean, name?: string) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = sizeOf(shape);
    this.requiresGrad = requiresGrad;
    this.name = name;
    finalizer.register(this, storage, this);
    trackInScope(this);
  }

  /** An uninitialized tensor (with `engine().poisonOutputs`, NaN from its first use on: see
   * launch.ts). */
  static empty(shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShape(shape, 'Tensor.empty');
    const bytes = Math.max(sizeOf(shape), 1) * BYTES_PER_ELEMENT;
    const e = engine();
    const buffer = e.pool.acquire(bytes, shapeString(shape));
    e.markUnwritten(buffer);
    return new Tensor(new Storage(buffer, bytes), shape, dtype, false);
  }

  static fromArray(data: ArrayLike<number>, shape?: Shape, options: TensorOptions = {}): Tensor {
    const dtype = options.dtype ?? 'f32';
    const s = shape ?? [data.length];
    checkShape(s, 'Tensor.fromArray');
    if (sizeOf(s) !== data.length) {
      throw new RangeError(`Tensor.fromArray: ${data.length} values do not fill shape ${shapeString(s)} (${sizeOf(s)} elements)`);
    }
    const typed = dtype === 'f32' ? Float32Array.from(data) : dtype === 'i32' ? Int32Array.from(data) : Uint32Array.from(data);
    const e = engine();
    const bytes = Math.max(typed.length, 1) * BYTES_PER_ELEMENT;
    const t = new Tensor(new Storage(e.pool.acquire(bytes, shapeString(s)), bytes), s, dtype, options.requiresGrad ?? false, options.name);
    if (typed.length > 0) e.write(t.buffer, typed);
    return t;
  }

  static zeros(shape: Shape, options: TensorOptions = {}): Tensor {
    return Tensor.full(shape, 0, options);
  }

  static full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
    const t = Tensor.empty(shape, options.dtype ?? 'f32');
    const bits = new DataView(new ArrayBuffer(4));
    if (t.dtype === 'f32') bits.setFloat32(0, value, true);
    else bits.setInt32(0, value, true);
    fill(t, bits.getUint32(0, true));
    t.requiresGrad = options.requiresGrad ?? false;
    t.name = options.name;
    return t;
  }

  /** The GPU buffer holding this tensor's elements (throws if disposed). */
  get buffer(): GPUBuffer {
    if (!this.storage) throw new Error(`${this.describe()} was used after dispose()`);
    return this.storage.buffer;
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  get ndim(): number {
    return this.shape.length;
  }

  describe(): string {
    return `tensor${this.name ? ` '${this.name}'` : ''} #${this.id} ${this.dtype}${shapeString(this.shape)}`;
  }

  /** A view with another shape over the same storage (no copy). Use `reshape()` from ops for
   * a differentiable version. */
  view(shape: Shape): Tensor {
    const resolved = resolveShape(shape, this.size, this.describe());
    return new Tensor(this.storageOrThrow().retain(), resolved, this.dtype, false);
  }

  /**
   * A tensor computed from this one's contents by `make` (a repacked copy, say), made once and
   * reused until a kernel writes this tensor's storage (engine/launch.ts calls `written()` on
   * every output) or the storage is released. Returns a handle of the caller's own (dispose it
   * as usual); `key` names what `make` computes, e.g. the op and its layout. Storage written
   * other than through `launch` (a raw `buffer` handed to other code) must call `written()`.
   */
  derived(key: string, make: () => Tensor): Tensor {
    const s = this.storageOrThrow();
    let t = s.derived?.get(key);
    if (!t) {
      t = make();
      untrack(t); // owned by the storage, not by the caller's scope
      (s.derived ??= new Map()).set(key, t);
      engine().pool.derivedBytes += t.buffer.size;
    }
    return t.detach();
  }

  /** This tensor's storage was just written: what `derived` kept from it is stale. */
  written(): void {
    this.storage?.dropDerived();
  }

  /** A tensor sharing storage that is cut off from the autograd tape. */
  detach(): Tensor {
    return new Tensor(this.storageOrThrow().retain(), this.shape, this.dtype, false, this.name);
  }

  async toArray(): Promise<TypedArrayFor<this['dtype']>> {
    if (engine().poisonOutputs) poisonIfUnwritten(this);
    const bytes = await engine().read(this.buffer, 0, this.size * BYTES_PER_ELEMENT);
    const out = this.dtype === 'f32' ? new Float32Array(bytes) : this.dtype === 'i32' ? new Int32Array(bytes) : new Uint32Array(bytes);
    return out as TypedArrayFor<this['dtype']>;
  }

  /** Read a one-element tensor as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`item() needs a one-element tensor, got ${this.describe()}`);
    return (await this.toArray())[0];
  }

  /** Reverse-mode autograd from this scalar (or with an explicit output gradient). */
  backward(gradient?: Tensor): void {
    runBackward(this, gradient);
  }

  dispose(): void {
    if (!this.storage) return;
    finalizer.unregister(this);
    this.storage.release();
    this.storage = null;
    this.node = null;
    untrack(this);
  }

  private storageOrThrow(): Storage {
    if (!this.storage) throw new Error(`${this.describe()} was used after dispose()`);
    return this.storage;
  }
}

/** Throws unless every tensor is alive and of `dtype`: '<op>: expected an f32 tensor, got ...'
 * (or 'f32 tensors' when the op takes several). */
export function checkDtype(op: string, dtype: DType, ...tensors: Tensor[]): void {
  for (const t of tensors) {
    t.buffer; // throws a clear error if disposed
    if (t.dtype !== dtype) throw new TypeError(`${op}: expected ${tensors.length > 1 ? `${dtype} tensors` : `${dtype === 'u32' ? 'a' : 'an'} ${dtype} tensor`}, got ${t.describe()}`);
  }
}
