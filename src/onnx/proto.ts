// The ONNX 1.20 schema (onnx-buf, generated for @bufbuild/protobuf v2; int64 fields are bigint).
// Re-exported from one place so the rest of the code never imports the generated module directly.
export * from 'onnx-buf';
export { create, toBinary, fromBinary, clone, equals, isFieldSet } from '@bufbuild/protobuf';
