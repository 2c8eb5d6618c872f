// Interop with PyTorch: import exported forward graphs, build training artifacts, hand trained tensors back.
export { importOnnx, ImportError, MIN_OPSET, type ImportOptions, type ImportedGraph } from './import';
export {
  chooseParams, describeChoice, differentiableAncestors, readParamsOption, EXPORTER_CONSTANT, BUFFER_NAME, TORCH_MAP_FORMAT,
  type ParamChoice, type ParamsSpec, type TorchParamMap, type TorchTensorEntry,
} from './params';
export { exportTrainingFromOnnx, type OnnxTrainingOptions, type OnnxTrainingResult, type OnnxManifest } from './export';
export { torchStateDict, exportTorchCheckpoint, type TorchStateDict } from './checkpoint';
