// TS and the ESM-only onnx-buf package are turned into CommonJS by esbuild (fast; types are checked by tsc).
module.exports = {
  testEnvironment: '<rootDir>/test/support/node-env.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(ts|js|mjs)$': '<rootDir>/test/support/esbuild-transform.js' },
  transformIgnorePatterns: ['/node_modules/(?!(onnx-buf|@bufbuild)/)'],
  testTimeout: 600000,
  setupFiles: ['<rootDir>/test/support/quiet-ort.js'],
  globalSetup: '<rootDir>/test/support/global-setup.js',
};
