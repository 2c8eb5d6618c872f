// Tests provoke ORT errors on purpose and assert on the exceptions they raise; ORT's own log of them (and its notes on
// test graphs) would only be noise in `npm test`. Users' runs keep ORT's default warning level.
process.env.ADEMAMIX_ORT_LOG_LEVEL = process.env.ADEMAMIX_ORT_LOG_LEVEL || 'fatal';
require('onnxruntime-common').env.logLevel = 'fatal';
