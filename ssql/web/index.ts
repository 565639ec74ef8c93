// The browser build's entry (`npm run build:web` -> dist/web/ssql-webgpu.js): the engine's public
// API plus the platform-independent SSQL modules. Nothing here may import a Node module or the
// `webgpu` npm package (tools/build-web.mjs fails if anything does); obtain a device with
// `initWebDevice()` (navigator.gpu) or `useDevice()` with a GPUDevice you already have.
export * from '../../engine/index.ts';

export * from '../models/resnet.ts';
export * from '../models/quant.ts';
export * from '../models/byol.ts';
export * from '../methods/method.ts';
export * from '../methods/simsiam.ts';
export * from '../methods/byol.ts';
export * from '../methods/registry.ts';
export * from '../train.ts';
export {
  DEFAULT_SETTINGS, formatBits, parseSetting, parseSettings, withSetting, computeFeatures, extractFeatures,
  linearMilestones, featureStats, trainLinear, trainLinearFaithful, knnTop1, evaluate,
} from '../eval/index.ts';
export type {
  BitSetting, ImageSet, Features, QuantizeOptions, FeatureOptions, LinearOptions as LinearProbeOptions,
  KnnOptions, EvalProtocol, EvalProgress, EvalOptions, EvalResult,
} from '../eval/index.ts';
export * from '../data/augment.ts';
export * from '../data/idx.ts';
export * from '../data/cifar.ts';
export * from '../checkpoint/safetensors.ts';
export * from '../report.ts';
