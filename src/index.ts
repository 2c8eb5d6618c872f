// ort-ademamix: ONNX training graphs with the AdEMAMix optimizer, run by ONNX Runtime from Node.js.
export * from './graph/builder';
export * from './graph/dtype';
export * from './graph/tensor-data';
export { attr, Node, Value, fmtShape, type Attr, type Dim, type Shape } from './graph/value';
export { toModelProto, toGraphProto, toFunctionProto, typeProto, type ModelOptions, type FunctionOptions } from './graph/serialize';
export * from './onnx/io';
export { OpError, defineOp, getOp, type OpDef, type GradRule, type GradCtx } from './ops/registry';
export { OPS_DOMAIN } from './ops/optimizers';
export * from './optim/nodes';
export * from './optim/schedules';
export * from './optim/reference';
export { ademamixFunction, simplifiedFunction, adamwFunction } from './optim/functions';
export { optimizerStepModel, type StepOp, type StepModel } from './optim/step-model';
export * from './io/safetensors';
export { Rng } from './util/rng';
export * from './native';
export { opsLibraryPath, ortLibraryPath } from './native/paths';
