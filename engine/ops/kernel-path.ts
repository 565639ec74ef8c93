// Which kernels the ops take: the fast ones (the default), or the reference path, which exists
// to check them. In reference mode every element-wise op takes the general strided kernel (one
// element per invocation, full index arithmetic), reductions take the general kernel (a
// workgroup or an invocation per output), and fused ops run as the chain of unfused ops they
// replace (batchNorm's `act` and `residual` options). tests/ssql/steps-equivalence.test.ts
// compares training runs both ways; nothing else should turn it on.

let reference = false;

export function setReferenceKernels(on: boolean): void {
  reference = on;
}

export function referenceKernels(): boolean {
  return reference;
}
