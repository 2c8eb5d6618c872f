// Module entry: init(ortLibraryPath) loads ONNX Runtime with dlopen and creates the one OrtEnv.
#include <dlfcn.h>
#include "ort.h"
#include "session.h"

namespace ademamix {

const OrtApi* ort = nullptr;
OrtEnv* ortEnv = nullptr;
static std::string loadedPath;

std::string StatusMessage(OrtStatus* status, const std::string& what) {
  if (!status) return "";
  std::string msg = what + ": " + ort->GetErrorMessage(status);
  ort->ReleaseStatus(status);
  return msg;
}

void Check(Napi::Env env, OrtStatus* status, const std::string& what) {
  if (!status) return;
  throw Napi::Error::New(env, StatusMessage(status, what));
}

void RequireInit(Napi::Env env) {
  if (!ort) throw Napi::Error::New(env, "ONNX Runtime is not loaded: call init(ortLibraryPath) first");
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "init(ortLibraryPath: string)");
  std::string path = info[0].As<Napi::String>();
  if (ort) {
    if (path != loadedPath) throw Napi::Error::New(env, "ONNX Runtime is already loaded from " + loadedPath);
    return Napi::String::New(env, ort->GetBuildInfoString ? ort->GetBuildInfoString() : "");
  }
  // RTLD_GLOBAL is not needed: the op library gets the API through RegisterCustomOps(OrtApiBase*).
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) throw Napi::Error::New(env, "cannot load ONNX Runtime from " + path + ": " + dlerror());
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto getBase = reinterpret_cast<GetApiBaseFn>(dlsym(lib, "OrtGetApiBase"));
  if (!getBase) throw Napi::Error::New(env, path + " does not export OrtGetApiBase: not an ONNX Runtime library");
  const OrtApiBase* base = getBase();
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (!api) {
    throw Napi::Error::New(env, path + " is ONNX Runtime " + base->GetVersionString() + ", which lacks C API version " +
                                    std::to_string(ORT_API_VERSION) + " (ONNX Runtime >= 1.23 is needed)");
  }
  OrtEnv* e = nullptr;
  OrtStatus* st = api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "ort-ademamix", &e);
  if (st) {
    std::string m = api->GetErrorMessage(st);
    api->ReleaseStatus(st);
    throw Napi::Error::New(env, "creating the ONNX Runtime environment: " + m);
  }
  ort = api;
  ortEnv = e;
  loadedPath = path;
  return Napi::String::New(env, base->GetVersionString());
}

}  // namespace ademamix

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, ademamix::Init));
  ademamix::Session::Register(env, exports);
  return exports;
}

NODE_API_MODULE(ademamix_session, InitModule)
