// Runs once in jest's own process (a test file's process.env is a copy, invisible to native code's getenv): the
// session addon reads ORT's log level from here when it creates ORT's environment (see quiet-ort.js).
module.exports = async () => {
  process.env.ADEMAMIX_ORT_LOG_LEVEL = process.env.ADEMAMIX_ORT_LOG_LEVEL || 'fatal';
};
