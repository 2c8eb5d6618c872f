// Module entry: init(ortLibraryPath) loads ONNX Runtime with dlopen and creates the one OrtEnv.
#include <cstdlib>
#include <dlfcn.h>
#include <unistd.h>
#include "ort.h"
#include "session.h"

namespace ademamix {

const OrtApi* ort = nullptr;
OrtEnv* ortEnv = nullptr;
static std::string loadedPath, loadedVersion;

std::string StatusMessage(OrtStatus* status, const std::string& what) {
  if (!status) return "";
  const char* m = ort->GetErrorMessage(status);
  std::string msg = what + ": " + (m ? m : "unknown ONNX Runtime error");
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

// init(ortLibraryPath) → ONNX Runtime version string. Idempotent for the same path; the library stays loaded.
static Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "init(ortLibraryPath: string)");
  std::string path = info[0].As<Napi::String>();
  if (ort) {
    if (path != loadedPath) throw Napi::Error::New(env, "ONNX Runtime is already loaded from " + loadedPath + ", not " + path);
    return Napi::String::New(env, loadedVersion);
  }
  if (access(path.c_str(), R_OK) != 0) throw Napi::Error::New(env, "ONNX Runtime library not found: " + path);
  // RTLD_LOCAL is enough: op libraries receive the API through RegisterCustomOps(options, OrtApiBase*).
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    throw Napi::Error::New(env, "cannot load ONNX Runtime from " + path + ": " + (e ? e : "dlopen failed"));
  }
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto getBase = reinterpret_cast<GetApiBaseFn>(dlsym(lib, "OrtGetApiBase"));
  if (!getBase) {
    dlclose(lib);
    throw Napi::Error::New(env, path + " does not export OrtGetApiBase: not an ONNX Runtime library");
  }
  const OrtApiBase* base = getBase();
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (!api) {
    std::string v = base->GetVersionString();
    dlclose(lib);
    throw Napi::Error::New(env, path + " is ONNX Runtime " + v + ", which lacks C API version " +
                                    std::to_string(ORT_API_VERSION) + " (this addon needs ONNX Runtime >= 1." +
                                    std::to_string(ORT_API_VERSION) + ")");
  }
  // ADEMAMIX_ORT_LOG_LEVEL (verbose|info|warning|error|fatal, default warning): ORT's own log; every failure also
  // reaches JS as an exception with ORT's message, so tests that provoke errors run with 'fatal'
  OrtLoggingLevel level = ORT_LOGGING_LEVEL_WARNING;
  if (const char* l = std::getenv("ADEMAMIX_ORT_LOG_LEVEL")) {
    const std::string s(l);
    level = s == "verbose" ? ORT_LOGGING_LEVEL_VERBOSE : s == "info" ? ORT_LOGGING_LEVEL_INFO : s == "error" ? ORT_LOGGING_LEVEL_ERROR
          : s == "fatal" ? ORT_LOGGING_LEVEL_FATAL : ORT_LOGGING_LEVEL_WARNING;
  }
  OrtEnv* e = nullptr;
  if (OrtStatus* st = api->CreateEnv(level, "ort-ademamix", &e)) {
    std::string m = api->GetErrorMessage(st);
    api->ReleaseStatus(st);
    throw Napi::Error::New(env, "creating the ONNX Runtime environment: " + m);
  }
  ort = api;
  ortEnv = e;
  loadedPath = path;
  loadedVersion = base->GetVersionString();
  return Napi::String::New(env, loadedVersion);
}

void RegisterMpi(Napi::Env env, Napi::Object exports);  // mpi.cc

}  // namespace ademamix

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, ademamix::Init, "init"));
  ademamix::Session::Register(env, exports);
  ademamix::RegisterMpi(env, exports);
  return exports;
}

NODE_API_MODULE(ademamix_session, InitModule)
