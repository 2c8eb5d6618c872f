// The collectives the runner needs outside the graph (agreeing that every rank holds the same state, gathering sharded
// optimizer states for a checkpoint, a clean end or an abort), over libademamix_mpi.so: the same library, and so the
// same MPI world, as the op library's collective ops. Exported as `mpi` on the addon; every call blocks the JS thread.
#include <dlfcn.h>
#include <napi.h>
#include <string>
#include "../../custom-ops/include/ademamix/mpi_api.h"

namespace ademamix {
namespace {

const AdemamixMpiApi* mpi = nullptr;

void Need(Napi::Env env) {
  if (!mpi) throw Napi::Error::New(env, "mpi: not initialized (call mpi.init(libraryPath) first)");
}

void Throw(Napi::Env env, const char* err) { throw Napi::Error::New(env, std::string("mpi: ") + err); }

// A typed array's buffer, element type and count (Float32Array, Float64Array or Uint8Array).
struct Buf { void* data; size_t count; int type; };
Buf BufOf(Napi::Env env, const Napi::Value& v) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "mpi: expected a Float32Array, Float64Array or Uint8Array");
  auto a = v.As<Napi::TypedArray>();
  int type;
  switch (a.TypedArrayType()) {
    case napi_float32_array: type = ADEMAMIX_MPI_F32; break;
    case napi_float64_array: type = ADEMAMIX_MPI_F64; break;
    case napi_uint8_array: type = ADEMAMIX_MPI_BYTE; break;
    default: throw Napi::TypeError::New(env, "mpi: expected a Float32Array, Float64Array or Uint8Array");
  }
  return {static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), a.ElementLength(), type};
}

// init(libraryPath) → {rank, size}. Loads the library with RTLD_GLOBAL (Open MPI's components need libmpi's symbols
// in the global scope) and calls MPI_Init_thread once.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "mpi.init(libraryPath: string)");
  if (!mpi) {
    const std::string path = info[0].As<Napi::String>();
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      const char* e = dlerror();
      throw Napi::Error::New(env, "mpi: cannot load " + path + ": " + (e ? e : "dlopen failed"));
    }
    auto get = reinterpret_cast<AdemamixMpiGetApi>(dlsym(lib, "AdemamixMpiApiGet"));
    const AdemamixMpiApi* api = get ? get() : nullptr;
    if (!api || api->version != ADEMAMIX_MPI_API_VERSION) throw Napi::Error::New(env, "mpi: " + path + " is not a compatible libademamix_mpi");
    mpi = api;
  }
  int rank = 0, size = 1;
  char err[512] = {0};
  if (mpi->init(&rank, &size, err, sizeof err)) Throw(env, err);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", rank);
  o.Set("size", size);
  return o;
}

// allreduce(array, 'sum'|'max'|'min'): in place
Napi::Value Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Need(env);
  Buf b = BufOf(env, info[0]);
  const std::string op = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
  const int o = op == "max" ? ADEMAMIX_MPI_MAX : op == "min" ? ADEMAMIX_MPI_MIN : ADEMAMIX_MPI_SUM;
  char err[512] = {0};
  if (mpi->allreduce(b.data, b.count, b.type, o, err, sizeof err)) Throw(env, err);
  return env.Undefined();
}

// allgather(send, recv): recv (size × send's length, same type) gets every rank's send, rank-major
Napi::Value Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Need(env);
  Buf s = BufOf(env, info[0]);
  Buf r = BufOf(env, info[1]);
  if (s.type != r.type) throw Napi::TypeError::New(env, "mpi.allgather: send and recv must have one element type");
  char err[512] = {0};
  int rank = 0, size = 1;
  if (mpi->init(&rank, &size, err, sizeof err)) Throw(env, err);
  if (r.count != s.count * static_cast<size_t>(size)) throw Napi::RangeError::New(env, "mpi.allgather: recv must hold size × send elements");
  if (mpi->allgather(s.data, r.data, s.count, s.type, err, sizeof err)) Throw(env, err);
  return env.Undefined();
}

// bcast(array, root): in place
Napi::Value Bcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Need(env);
  Buf b = BufOf(env, info[0]);
  const int root = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  char err[512] = {0};
  if (mpi->bcast(b.data, b.count, b.type, root, err, sizeof err)) Throw(env, err);
  return env.Undefined();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Need(env);
  char err[512] = {0};
  if (mpi->barrier(err, sizeof err)) Throw(env, err);
  return env.Undefined();
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Need(env);
  mpi->abort(info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1);
  return env.Undefined();
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!mpi) return env.Undefined();
  char err[512] = {0};
  if (mpi->finalize(err, sizeof err)) Throw(env, err);
  return env.Undefined();
}

Napi::Value CommSeconds(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), mpi ? mpi->comm_seconds() : 0.0);
}

}  // namespace

void RegisterMpi(Napi::Env env, Napi::Object exports) {
  Napi::Object m = Napi::Object::New(env);
  m.Set("init", Napi::Function::New(env, Init, "init"));
  m.Set("allreduce", Napi::Function::New(env, Allreduce, "allreduce"));
  m.Set("allgather", Napi::Function::New(env, Allgather, "allgather"));
  m.Set("bcast", Napi::Function::New(env, Bcast, "bcast"));
  m.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  m.Set("abort", Napi::Function::New(env, Abort, "abort"));
  m.Set("finalize", Napi::Function::New(env, Finalize, "finalize"));
  m.Set("commSeconds", Napi::Function::New(env, CommSeconds, "commSeconds"));
  exports.Set("mpi", m);
}

}  // namespace ademamix
