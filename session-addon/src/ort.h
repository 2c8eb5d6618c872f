// Shared access to the dynamically loaded ONNX Runtime C API.
#pragma once
#include <napi.h>
#include <string>
#include "onnxruntime_c_api.h"

namespace ademamix {

extern const OrtApi* ort;  // null until init()
extern OrtEnv* ortEnv;

// Converts a failed OrtStatus into a JS exception with context; releases the status.
void Check(Napi::Env env, OrtStatus* status, const std::string& what);
// Same, for worker threads: returns the message ("" on success) instead of throwing.
std::string StatusMessage(OrtStatus* status, const std::string& what);
void RequireInit(Napi::Env env);

}  // namespace ademamix
