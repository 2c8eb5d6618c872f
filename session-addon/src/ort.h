// Shared access to the ONNX Runtime C API, loaded at run time with dlopen (the addon never links libonnxruntime,
// so it runs on whichever runtime JS points it at: onnxruntime-node's own copy by default).
#pragma once
#include <napi.h>
#include <string>
#include "onnxruntime_c_api.h"

namespace ademamix {

extern const OrtApi* ort;  // null until init()
extern OrtEnv* ortEnv;     // one per process, never released (sessions may be finalized after module teardown)

// Message of a failed status, prefixed with `what`; releases the status. "" when status is null (success).
std::string StatusMessage(OrtStatus* status, const std::string& what);
// Throws a JS Error for a failed status (JS thread only). Releases the status either way.
void Check(Napi::Env env, OrtStatus* status, const std::string& what);
void RequireInit(Napi::Env env);

}  // namespace ademamix
