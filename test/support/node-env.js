// Jest runs tests in a separate V8 context whose Float32Array etc. differ from the main context's. Native addons
// (onnxruntime-node, our session addon) create typed arrays in the main context, and onnxruntime-common's Tensor
// checks `instanceof`, so the test context must share the main context's typed-array constructors.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = ['ArrayBuffer', 'SharedArrayBuffer', 'DataView', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray',
  'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array',
  'BigUint64Array'];

class SharedTypedArrayEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const k of SHARED) this.global[k] = globalThis[k];
  }
}
module.exports = SharedTypedArrayEnvironment;
