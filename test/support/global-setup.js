// Runs once in jest's own process (a test file's process.env is a copy, invisible to native code's getenv): the
// session addon reads ORT's log level from here when it creates ORT's environment (see quiet-ort.js).
// The native build is a precondition: without the op library, sessions would quietly run the function bodies and the
// kernel tests would test those instead, so a missing build fails the whole run with one message.
const fs = require('node:fs');
const path = require('node:path');

module.exports = async () => {
  process.env.ADEMAMIX_ORT_LOG_LEVEL = process.env.ADEMAMIX_ORT_LOG_LEVEL || 'fatal';
  const root = path.resolve(__dirname, '../..');
  const build = path.resolve(root, process.env.ADEMAMIX_BUILD_DIR || 'build');
  const missing = ['custom-ops/libademamix_ops.so', 'session-addon/ademamix_session.node']
    .map((f) => path.join(build, f)).filter((f) => !fs.existsSync(f));
  if (missing.length) throw new Error(`npm test needs the native build: ${missing.join(', ')} missing; run \`npm run build:native\``);
};
