// The engine's public API (platform independent), and the only way into engine/ from outside it
// (tests/engine/imports.test.ts checks that). On Node, obtain a device with `initNodeDevice()`
// from './device-node.ts' (the one Node-only entry); in a browser with `initWebDevice()`.
export { Engine, GPUError, engine, initWebDevice, initFromGPU, useDevice } from './device.ts';
export type { AdapterReport } from './device.ts';
export { Tensor, checkDtype } from './tensor.ts';
export type { DType, TensorOptions } from './tensor.ts';
export { sizeOf, shapeString, broadcastShapes, contiguousStrides } from './shapes.ts';
export type { Shape } from './shapes.ts';
export { scope, keep } from './scope.ts';
export { Rng } from './random.ts';
export { noGrad, isGradEnabled } from './autograd.ts';

// Writing kernels: declare a WGSL module's interface once, then launch its entry points.
export { declareKernels } from './kernels.ts';
export type { Kernel, KernelsDecl, EntryPointDecl, ParamType, DefineKind } from './kernels.ts';
export { launch, grid1d } from './launch.ts';
export type { LaunchArgs } from './launch.ts';

// Kernel variants measured per adapter (conv tile shapes and designs).
export { setTuning, tuningEnabled, tunePending, forceVariant, tuningTable, loadTuningTable, clearTuning } from './tuning.ts';
export type { TuneResult, TuningTable } from './tuning.ts';

// Ops.
export { setReferenceKernels, referenceKernels } from './ops/kernel-path.ts';
export * from './ops/elementwise.ts';
export { sum, mean, max, min } from './ops/reduce.ts';
export type { ReduceOptions } from './ops/reduce.ts';
export { sumTo } from './ops/reduce-kernel.ts';
export { reshape, flatten, permute, transpose, slice, concat, flip } from './ops/shape.ts';
export { matmul } from './ops/matmul.ts';
export type { MatmulOptions } from './ops/matmul.ts';
export { conv2d, conv2dGeometry, conv2dInputGrad, conv2dWeightGrad } from './ops/conv.ts';
export type { Conv2dOptions as Conv2dOpOptions, ConvGeometry } from './ops/conv.ts';
export { zerosLike, onesLike } from './ops/fill.ts';
export { batchNorm } from './ops/batchnorm.ts';
export type { BatchNormAct, BatchNormOptions } from './ops/batchnorm.ts';
export { linear } from './ops/linear.ts';
export { AbsMaxObserver, MinMaxObserver, fakeQuantWeight, fakeQuantAct } from './ops/quant.ts';
export type { FakeQuantWeightOptions } from './ops/quant.ts';
export { avgPool2d, maxPool2d, globalAvgPool } from './ops/pooling.ts';
export type { Pool2dOptions } from './ops/pooling.ts';
export { cosineSimilarity, simsiamLoss, crossEntropy, accuracy } from './ops/loss.ts';
export type { CosineOptions, CrossEntropyOptions } from './ops/loss.ts';
export { emaUpdate } from './ops/ema.ts';
export { enqueueColumns } from './ops/queue.ts';

// Training: optimizer and schedules, and the torch.nn-style layers.
export { SGD, cosineLR, cosineLRPerStep, stepLR, linearWarmup } from './optim.ts';
export type { SGDOptions } from './optim.ts';
export * from './nn/index.ts';
