// PTQ linear evaluation (docs/method.md#evaluation), by concern: bit settings (./settings.ts), the images
// (./images.ts), frozen quantized feature extraction (./features.ts), the linear classifier of
// both protocols (./linear.ts), kNN (./knn.ts), and the driver over bit settings (./evaluate.ts).
// This file is the module's public face.
export { DEFAULT_SETTINGS, formatBits, parseSetting, parseSettings } from './settings.ts';
export type { BitSetting } from './settings.ts';
export type { ImageSet } from './images.ts';
export { computeFeatures, extractFeatures, withSetting } from './features.ts';
export type { FeatureOptions, Features, QuantizeOptions } from './features.ts';
export {
  FAITHFUL_RECIPE, FAST_RECIPE, classifierAccuracy, featureStats, fitLinear, linearLR, linearMilestones, logitsOf, trainLinear, trainLinearFaithful,
} from './linear.ts';
export type { LinearClassifier, LinearOptions, LinearRecipe, LinearSchedule } from './linear.ts';
export { knnTop1 } from './knn.ts';
export type { KnnOptions } from './knn.ts';
export { evaluate } from './evaluate.ts';
export type { EvalOptions, EvalProgress, EvalProtocol, EvalResult } from './evaluate.ts';
