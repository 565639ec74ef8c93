// Layer objects after torch.nn.
export { Module } from './module.ts';
export type { StateDict, LoadResult } from './module.ts';
export { Linear, Conv2d, BatchNorm1d, BatchNorm2d, BatchNormBase, ReLU, Sequential, MaxPool2d, AvgPool2d, GlobalAvgPool } from './layers.ts';
export type { LinearOptions, Conv2dOptions, BatchNormModuleOptions } from './layers.ts';
export { manualSeed, kaimingUniformA5, uniform, fanIn } from './init.ts';
export type { Random } from './init.ts';
