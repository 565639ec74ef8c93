// The Module base, after torch.nn.Module: named parameters and buffers in registration order,
// named children, train()/eval(), and state dicts with PyTorch's key names and order (a
// module's own parameters, then its own buffers, then each child's entries under `name.`).
import { keep } from '../scope.ts';
import { contiguousStrides, shapeString } from '../shapes.ts';
import type { Tensor } from '../tensor.ts';
import { mapKernel } from '../ops/elementwise.ts';

/** An ordered map from PyTorch-style keys to tensors. */
export type StateDict = Map<string, Tensor>;

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export abstract class Module {
  /** Training mode (batch statistics in batch norm); set by train()/eval(). */
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, Tensor | null>();
  private readonly children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** The class name used in error messages (PyTorch prints the same). */
  get typeName(): string {
    return this.constructor.name;
  }

  /** Register a trainable tensor (its requiresGrad is set). `null` registers an absent one
   * (as `bias=False` does), which is skipped everywhere. The tensor is kept out of scopes. */
  protected registerParameter(name: string, t: Tensor | null): Tensor | null {
    this.checkName(name);
    if (t) {
      t.requiresGrad = true;
      keep(t);
    }
    this.params.set(name, t);
    return t;
  }

  /** Register a state tensor (running statistics): saved in the state dict, not trained. */
  protected registerBuffer(name: string, t: Tensor | null): Tensor | null {
    this.checkName(name);
    if (t) keep(t);
    this.buffers.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    this.children.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (name === '' || name.includes('.')) throw new TypeError(`${this.typeName}: invalid member name '${name}' (must be non-empty, without '.')`);
    if (this.params.has(name) || this.buffers.has(name) || this.children.has(name)) {
      throw new TypeError(`${this.typeName}: '${name}' is already registered`);
    }
  }

  train(mode = true): this {
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** This module and every descendant, pre-order, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.children) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Parameters in PyTorch's order (each shared tensor once). */
  namedParameters(): [string, Tensor][] {
    return this.namedMembers((m) => m.params);
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(): [string, Tensor][] {
    return this.namedMembers((m) => m.buffers);
  }

  private namedMembers(pick: (m: Module) => Map<string, Tensor | null>): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of pick(m)) {
        if (!t || seen.has(t)) continue;
        seen.add(t);
        out.push([prefix ? `${prefix}.${name}` : name, t]);
      }
    }
    return out;
  }

  /** Every parameter and buffer under PyTorch's key names and in its order. The tensors are the
   * module's own (not copies): read them, do not dispose them. */
  stateDict(prefix = '', into: StateDict = new Map()): StateDict {
    for (const [name, t] of this.params) if (t) into.set(prefix + name, t);
    for (const [name, t] of this.buffers) if (t) into.set(prefix + name, t);
    for (const [name, child] of this.children) child.stateDict(`${prefix}${name}.`, into);
    return into;
  }

  /**
   * Copy tensors into this module's parameters and buffers (on the GPU, in place, so optimizers
   * holding the parameters stay valid). Checks everything before copying anything: with
   * `strict` (the default) missing and unexpected keys are errors; shape or dtype mismatches
   * always are. The error names every offending key, as PyTorch's does.
   */
  loadStateDict(state: StateDict | Record<string, Tensor>, strict = true): LoadResult {
    const source = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !source.has(k));
    const unexpectedKeys = [...source.keys()].filter((k) => !own.has(k));
    const problems: string[] = [];
    if (strict && unexpectedKeys.length) problems.push(`Unexpected key(s) in state_dict: ${unexpectedKeys.map((k) => `"${k}"`).join(', ')}.`);
    if (strict && missingKeys.length) problems.push(`Missing key(s) in state_dict: ${missingKeys.map((k) => `"${k}"`).join(', ')}.`);
    for (const [key, dst] of own) {
      const src = source.get(key);
      if (!src) continue;
      if (src.disposed) problems.push(`${key}: the tensor in the state dict was disposed.`);
      else if (shapeString(src.shape) !== shapeString(dst.shape)) {
        problems.push(`size mismatch for ${key}: copying a param with shape ${shapeString(src.shape)} from checkpoint, the shape in current model is ${shapeString(dst.shape)}.`);
      } else if (src.dtype !== dst.dtype) {
        problems.push(`dtype mismatch for ${key}: copying a ${src.dtype} tensor from checkpoint, the tensor in current model is ${dst.dtype}.`);
      }
    }
    if (problems.length) throw new Error(`Error(s) in loading state_dict for ${this.typeName}:\n\t${problems.join('\n\t')}`);
    for (const [key, dst] of own) {
      const src = source.get(key);
      if (src && src !== dst) copyInto(src, dst);
    }
    return { missingKeys, unexpectedKeys };
  }
}

/** Bit-exact copy of `src` into `dst` (same shape) on the GPU. */
function copyInto(src: Tensor, dst: Tensor): void {
  if (src.size === 0) return;
  const strides = contiguousStrides([src.size]);
  mapKernel({
    name: 'copy', expr: 'a', type: 'u32', iterShape: [src.size],
    a: { tensor: src, offset: 0, strides }, out: { tensor: dst, offset: 0, strides },
  });
}
