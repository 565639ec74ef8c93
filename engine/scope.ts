// Scopes: `scope(fn)` disposes every tensor created while `fn` runs except what it returns
// (tensors found in the result, in arrays or plain objects) and what `keep()` marks.
import type { Tensor } from './tensor.ts';

const stack: Set<Tensor>[] = [];

export function trackInScope(t: Tensor): void {
  if (stack.length > 0) stack[stack.length - 1].add(t);
}

export function untrack(t: Tensor): void {
  for (const s of stack) s.delete(t);
}

/** Exempt a tensor from disposal by the enclosing scopes. */
export function keep<T extends Tensor>(t: T): T {
  untrack(t);
  return t;
}

function collect(value: unknown, out: Set<Tensor>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if ('shape' in value && 'dtype' in value && 'dispose' in value) {
    out.add(value as Tensor);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    for (const v of value instanceof Map ? value.values() : Object.values(value)) collect(v, out, seen);
  }
}

export function scope<T>(fn: () => T): T {
  const created = new Set<Tensor>();
  stack.push(created);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of created) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) throw new TypeError('scope(fn): fn must be synchronous (await outside the scope)');
  const kept = new Set<Tensor>();
  collect(result, kept, new Set());
  for (const t of created) {
    if (kept.has(t)) trackInScope(t); // hand it to the enclosing scope
    else t.dispose();
  }
  return result;
}
