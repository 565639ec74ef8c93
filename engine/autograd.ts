// Reverse-mode autograd over a tape. Each differentiable op calls `record()` with its inputs and
// a backward function that maps the output gradient to input gradients (using other ops, so
// no readback happens anywhere). `backward()` walks the recorded graph in reverse topological
// order, accumulates gradients, and stores them in `.grad` of leaf tensors that require grad.
// The two kernels it needs itself, ones (the seed) and add (accumulation), are handed to it by the
// element-wise ops module (`setGradientArithmetic`), so this module imports no op.
import type { Tensor } from './tensor.ts';
import { keep, scope } from './scope.ts';

export interface GradientArithmetic {
  /** a + b, same shape, not recorded. */
  add(a: Tensor, b: Tensor): Tensor;
  /** The sum of same-shaped tensors, added left to right (the rounding of chained adds), in
   * fewer dispatches than chained adds; not recorded. */
  addN(tensors: readonly Tensor[]): Tensor;
  /** A tensor of ones shaped like `t`: the gradient of a scalar root. */
  onesLike(t: Tensor): Tensor;
}

let arithmetic: GradientArithmetic | null = null;

/** Called once by engine/ops/elementwise.ts when it loads. */
export function setGradientArithmetic(a: GradientArithmetic): void {
  arithmetic = a;
}

export interface TapeNode {
  op: string;
  inputs: Tensor[];
  /** Gradient of each input (null where an input needs none). Runs with recording off. */
  backward: (gradOutput: Tensor) => (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording anything on the tape (PyTorch's `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = before;
  }
}

/** Attach a tape node to `output` if grad is enabled and some input requires grad. */
export function record(output: Tensor, op: string, inputs: Tensor[], backward: TapeNode['backward']): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    output.requiresGrad = true;
    output.node = { op, inputs, backward };
  }
  return output;
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: deep graphs (long training loops unrolled by mistake) must not overflow.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top[0].node?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order; // inputs before outputs
}

export function backward(root: Tensor, gradient?: Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward(): ${root.describe()} does not require grad (no parameter with requiresGrad reached it, or it was computed under noGrad)`);
  if (!gradient && root.size !== 1) throw new Error(`backward(): ${root.describe()} is not a scalar; pass the output gradient explicitly`);
  if (gradient && gradient.shape.join() !== root.shape.join()) {
    throw new Error(`backward(): gradient ${gradient.describe()} does not match ${root.describe()}`);
  }
  const order = topologicalOrder(root);
  // A disposed tensor has lost its tape entry (and its storage): it would pass for a leaf and
  // silently swallow the gradient meant for the parameters behind it.
  const gone = order.find((t) => t.disposed);
  if (gone) {
    throw new Error(`backward(): ${gone.describe()} was disposed (by dispose() or its scope()) before backward() reached it; call backward() before the graph is disposed, e.g. inside the same scope`);
  }
  const ops = arithmetic;
  if (!ops) throw new Error('backward(): no gradient arithmetic registered (engine/ops/elementwise.ts registers it; import the engine through engine/index.ts)');
  // Each tensor's gradient contributions, summed when the walk reaches the tensor: a parameter
  // used in four passes gets its gradient in one addN dispatch instead of three adds.
  const grads = new Map<Tensor, Tensor[]>();
  // In a scope: if backward fails part-way (a freed graph, say), no pending gradient is left
  // behind; leaf gradients are exempt through keep().
  noGrad(() => scope(() => {
    grads.set(root, [gradient ?? ops.onesLike(root)]);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const parts = grads.get(t);
      if (!parts) continue;
      grads.delete(t);
      const g = parts.length === 1 ? parts[0] : ops.addN(parts);
      if (parts.length > 1) for (const p of parts) p.dispose();
      const node = t.node;
      if (!node) {
        // A leaf: accumulate into .grad, which outlives any scope.
        if (t.grad) {
          const sum = ops.add(t.grad, g);
          t.grad.dispose();
          t.grad = keep(sum);
          if (g !== gradient) g.dispose();
        } else {
          t.grad = keep(g === gradient ? g.detach() : g);
        }
        continue;
      }
      // A backward function may hand `g` straight through; give each input its own handle.
      // In a scope: the temporaries a backward function creates are freed here, not by the GC.
      const inputGrads = scope(() => node.backward(g)).map((gi) => (gi === g ? g.detach() : gi));
      if (g !== gradient) g.dispose();
      node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (!gi) return;
        if (!input.requiresGrad) { gi.dispose(); return; }
        const parts = grads.get(input);
        if (parts) parts.push(gi);
        else grads.set(input, [gi]);
      });
      // Free the graph as PyTorch does; a second backward() through it is an error.
      t.node = {
        op: node.op, inputs: [],
        backward: () => { throw new Error(`backward(): the graph through '${node.op}' was already freed by an earlier backward()`); },
      };
    }
  }));
}
