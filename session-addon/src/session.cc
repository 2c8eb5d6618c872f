#include "session.h"
#include <unistd.h>
#include <cstring>
#include <map>

namespace ademamix {

namespace {

// Execution provider libraries registered with the process's OrtEnv, by path: a library is registered once and
// stays for the life of the process (sessions hold its devices).
std::map<std::string, std::string>& RegisteredEpLibraries() {
  static std::map<std::string, std::string> libs;
  return libs;
}

bool IsDeviceValue(const OrtValue* v) {
  const OrtMemoryInfo* mi = nullptr;
  if (OrtStatus* st = ort->GetTensorMemoryInfo(v, &mi)) { ort->ReleaseStatus(st); return false; }
  OrtMemoryInfoDeviceType t = OrtMemoryInfoDeviceType_CPU;
  ort->MemoryInfoGetDeviceType(mi, &t);
  return t != OrtMemoryInfoDeviceType_CPU;
}

const char* HardwareTypeName(OrtHardwareDeviceType t) {
  switch (t) {
    case OrtHardwareDeviceType_CPU: return "CPU";
    case OrtHardwareDeviceType_GPU: return "GPU";
    case OrtHardwareDeviceType_NPU: return "NPU";
  }
  return "?";
}

GraphOptimizationLevel ParseOptLevel(Napi::Env env, const std::string& s) {
  if (s == "disabled") return ORT_DISABLE_ALL;
  if (s == "basic") return ORT_ENABLE_BASIC;
  if (s == "extended") return ORT_ENABLE_EXTENDED;
  if (s == "all") return ORT_ENABLE_ALL;
  throw Napi::TypeError::New(env, "graphOptimizationLevel must be 'disabled', 'basic', 'extended' or 'all', got '" + s + "'");
}

ExecutionMode ParseExecutionMode(Napi::Env env, const std::string& s) {
  if (s == "sequential") return ORT_SEQUENTIAL;
  if (s == "parallel") return ORT_PARALLEL;
  throw Napi::TypeError::New(env, "executionMode must be 'sequential' or 'parallel', got '" + s + "'");
}

std::string Describe(const IOInfo& io) {
  std::string s = std::string(io.isTensor ? TypeToName(io.type) : "non-tensor") + "[";
  for (size_t i = 0; i < io.dims.size(); i++)
    s += (i ? "," : "") + (io.dims[i] >= 0 ? std::to_string(io.dims[i]) : io.symbols[i].empty() ? "?" : io.symbols[i]);
  return s + "]";
}

// Known dims must agree; symbolic/unknown ones (-1) match anything.
bool DimsCompatible(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i] >= 0 && b[i] >= 0 && a[i] != b[i]) return false;
  return true;
}

void ReadInfos(Napi::Env env, OrtSession* s, bool inputs, const std::string& label, std::vector<IOInfo>* out) {
  OrtAllocator* alloc = nullptr;
  Check(env, ort->GetAllocatorWithDefaultOptions(&alloc), "default allocator");
  const std::string what = label + ": reading " + (inputs ? "input" : "output") + " metadata";
  size_t n = 0;
  Check(env, inputs ? ort->SessionGetInputCount(s, &n) : ort->SessionGetOutputCount(s, &n), what);
  for (size_t i = 0; i < n; i++) {
    IOInfo info;
    char* name = nullptr;
    Check(env, inputs ? ort->SessionGetInputName(s, i, alloc, &name) : ort->SessionGetOutputName(s, i, alloc, &name), what);
    info.name = name;
    alloc->Free(alloc, name);
    OrtTypeInfo* ti = nullptr;
    Check(env, inputs ? ort->SessionGetInputTypeInfo(s, i, &ti) : ort->SessionGetOutputTypeInfo(s, i, &ti), what);
    const OrtTensorTypeAndShapeInfo* tsi = nullptr;  // owned by ti; null for sequences, maps, ...
    OrtStatus* st = ort->CastTypeInfoToTensorInfo(ti, &tsi);
    if (!st && tsi) {
      size_t nd = 0;
      st = ort->GetTensorElementType(tsi, &info.type);
      if (!st) st = ort->GetDimensionsCount(tsi, &nd);
      if (!st) {
        info.dims.assign(nd, 0);
        st = ort->GetDimensions(tsi, info.dims.data(), nd);
      }
      std::vector<const char*> sym(nd, nullptr);
      if (!st) st = ort->GetSymbolicDimensions(tsi, sym.data(), nd);
      for (size_t k = 0; k < nd; k++) info.symbols.push_back(sym[k] ? sym[k] : "");
    } else {
      info.isTensor = false;
    }
    ort->ReleaseTypeInfo(ti);
    Check(env, st, what);
    out->push_back(std::move(info));
  }
}

}  // namespace

void Session::Register(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Session", {
      InstanceMethod("inputs", &Session::Inputs), InstanceMethod("outputs", &Session::Outputs),
      InstanceMethod("setCarry", &Session::SetCarry), InstanceMethod("setState", &Session::SetState),
      InstanceMethod("getState", &Session::GetState), InstanceMethod("run", &Session::Run),
      InstanceMethod("runAsync", &Session::RunAsync), InstanceMethod("endProfiling", &Session::EndProfiling),
      InstanceMethod("release", &Session::Release)});
  exports.Set("Session", cls);
}

// new Session(model: string | Uint8Array, options?: {intraOpThreads, intraOpSpinning, interOpThreads, graphOptimizationLevel,
//   executionMode, opsLibrary, profilingPrefix, executionProvider: 'cpu' | {cuda: {providerLibrary, deviceIndex?,
//   disableCpuFallback?, options?}}})
Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  if (info.Length() < 1 || !(info[0].IsString() || info[0].IsTypedArray()))
    throw Napi::TypeError::New(env, "Session(model: string | Uint8Array, options?)");
  Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  label_ = info[0].IsString() ? std::string(info[0].As<Napi::String>()) : std::string("<model bytes>");
  const std::string opening = "creating a session for " + label_;

  OrtSessionOptions* so = nullptr;
  Check(env, ort->CreateSessionOptions(&so), opening);
  std::unique_ptr<OrtSessionOptions, void (*)(OrtSessionOptions*)> guard(so, [](OrtSessionOptions* p) { ort->ReleaseSessionOptions(p); });
  auto opt = [&](const char* k) { return opts.Get(k); };
  auto count = [&](const char* k) -> int {
    Napi::Value v = opt(k);
    if (v.IsUndefined() || v.IsNull()) return -1;
    if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0)
      throw Napi::TypeError::New(env, std::string(k) + " must be a non-negative number (0: ORT's default)");
    return v.As<Napi::Number>().Int32Value();
  };
  auto text = [&](const char* k) -> std::string {
    Napi::Value v = opt(k);
    if (!v.IsString()) throw Napi::TypeError::New(env, std::string(k) + " must be a string");
    return v.As<Napi::String>();
  };
  auto given = [&](const char* k) { Napi::Value v = opt(k); return !v.IsUndefined() && !v.IsNull(); };

  if (int n = count("intraOpThreads"); n >= 0) Check(env, ort->SetIntraOpNumThreads(so, n), opening + ": intraOpThreads");
  if (given("intraOpSpinning")) {
    Napi::Value v = opt("intraOpSpinning");
    if (!v.IsBoolean()) throw Napi::TypeError::New(env, "intraOpSpinning must be a boolean");
    Check(env, ort->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", v.As<Napi::Boolean>().Value() ? "1" : "0"),
          opening + ": intraOpSpinning");
  }
  if (int n = count("interOpThreads"); n >= 0) Check(env, ort->SetInterOpNumThreads(so, n), opening + ": interOpThreads");
  if (given("graphOptimizationLevel"))
    Check(env, ort->SetSessionGraphOptimizationLevel(so, ParseOptLevel(env, text("graphOptimizationLevel"))), opening);
  if (given("executionMode"))
    Check(env, ort->SetSessionExecutionMode(so, ParseExecutionMode(env, text("executionMode"))), opening);
  if (given("profilingPrefix")) {
    std::string p = text("profilingPrefix");
    Check(env, ort->EnableProfiling(so, p.c_str()), opening + ": enabling profiling");
  }
  if (given("opsLibrary")) {
    std::string lib = text("opsLibrary");
    Check(env, ort->RegisterCustomOpsLibrary_V2(so, lib.c_str()), opening + ": registering op library " + lib);
  }
  if (given("executionProvider")) {
    Napi::Value ep = opt("executionProvider");
    const char* usage = "executionProvider must be 'cpu' or {cuda: {providerLibrary: string, deviceIndex?: number, "
                        "disableCpuFallback?: boolean, options?: {[key]: string}}}";
    if (ep.IsString()) {
      if (ep.As<Napi::String>().Utf8Value() != "cpu") throw Napi::TypeError::New(env, usage);
    } else if (ep.IsObject() && ep.As<Napi::Object>().Get("cuda").IsObject()) {
      AppendCuda(env, so, ep.As<Napi::Object>().Get("cuda").As<Napi::Object>(), opening);
    } else {
      throw Napi::TypeError::New(env, usage);
    }
  }
  if (info[0].IsString()) {
    Check(env, ort->CreateSession(ortEnv, label_.c_str(), so, &session_), "loading model " + label_);
  } else {
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    const uint8_t* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    Check(env, ort->CreateSessionFromArray(ortEnv, p, ta.ByteLength(), so, &session_), "loading model from bytes");
  }
  try {
    ReadInfos(env, session_, true, label_, &in_);
    ReadInfos(env, session_, false, label_, &out_);
    if (device_.epDevice) {
      // State on the device: the EP's shared allocator (one exists for every OrtEpDevice's default memory), runs
      // through one IoBinding reused for every run.
      device_.memInfo = ort->EpDevice_MemoryInfo(device_.epDevice, OrtDeviceMemoryType_DEFAULT);
      if (!device_.memInfo) throw Napi::Error::New(env, opening + ": the CUDA device reports no device memory");
      Check(env, ort->GetSharedAllocator(ortEnv, device_.memInfo, &device_.alloc), opening + ": device allocator");
      if (!device_.alloc) throw Napi::Error::New(env, opening + ": ONNX Runtime has no shared allocator for the CUDA device");
      Check(env, ort->CreateIoBinding(session_, &device_.binding), opening + ": creating the IoBinding");
      Check(env, ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &device_.cpuInfo), opening);
    }
  } catch (...) {
    ReleaseAll();  // a throwing constructor never runs the destructor
    throw;
  }
  state_.assign(in_.size(), Slot{});
  carrySource_.assign(in_.size(), -1);
  inPlace_.assign(in_.size(), false);
  carryTarget_.assign(out_.size(), -1);
}

Session::~Session() { ReleaseAll(); }

// executionProvider {cuda: {providerLibrary, deviceIndex?, disableCpuFallback?, options?}}: registers the CUDA EP's
// provider library with the OrtEnv (once per path), picks the deviceIndex-th GPU it offers and appends it to the
// session options (SessionOptionsAppendExecutionProvider_V2). Every failure says which step and what to check.
void Session::AppendCuda(Napi::Env env, OrtSessionOptions* so, Napi::Object cuda, const std::string& opening) {
  Napi::Value libV = cuda.Get("providerLibrary");
  if (!libV.IsString())
    throw Napi::TypeError::New(env, "executionProvider.cuda.providerLibrary must be the path of libonnxruntime_providers_cuda.so");
  const std::string lib = libV.As<Napi::String>();
  Napi::Value idxV = cuda.Get("deviceIndex");
  const int index = idxV.IsNumber() ? idxV.As<Napi::Number>().Int32Value() : 0;
  if (index < 0) throw Napi::TypeError::New(env, "executionProvider.cuda.deviceIndex must be >= 0");
  const std::string what = opening + ": CUDA execution provider";
  if (access(lib.c_str(), R_OK) != 0)
    throw Napi::Error::New(env, what + ": provider library not found: " + lib +
                                    " (executionProvider.cuda.providerLibrary must name libonnxruntime_providers_cuda.so "
                                    "from a GPU build of the same ONNX Runtime version)");
  auto& libs = RegisteredEpLibraries();
  if (!libs.count(lib)) {
    const std::string name = "ademamix.ep." + std::to_string(libs.size());
    Check(env, ort->RegisterExecutionProviderLibrary(ortEnv, name.c_str(), lib.c_str()),
          what + ": loading provider library " + lib);
    libs[lib] = name;
  }
  const OrtEpDevice* const* devices = nullptr;
  size_t n = 0;
  Check(env, ort->GetEpDevices(ortEnv, &devices, &n), what + ": listing devices");
  std::vector<const OrtEpDevice*> gpus;
  std::string seen;
  for (size_t i = 0; i < n; i++) {
    const char* ep = ort->EpDevice_EpName(devices[i]);
    const OrtHardwareDeviceType type = ort->HardwareDevice_Type(ort->EpDevice_Device(devices[i]));
    seen += std::string(seen.empty() ? "" : ", ") + (ep ? ep : "?") + " on " + HardwareTypeName(type);
    if (ep && std::string(ep) == "CUDAExecutionProvider" && type == OrtHardwareDeviceType_GPU) gpus.push_back(devices[i]);
  }
  if (gpus.empty())
    throw Napi::Error::New(env, what + ": no GPU: " + lib + " loaded, but ONNX Runtime offers no CUDA device (it offers: " +
                                    (seen.empty() ? "nothing" : seen) +
                                    "). Check that a GPU is present, its driver is installed and the CUDA/cuDNN libraries "
                                    "the provider needs are found.");
  if (static_cast<size_t>(index) >= gpus.size())
    throw Napi::Error::New(env, what + ": deviceIndex " + std::to_string(index) + " but there are " +
                                    std::to_string(gpus.size()) + " CUDA device(s)");
  device_.epDevice = gpus[index];
  std::vector<std::string> keys, values;
  Napi::Value optsV = cuda.Get("options");
  if (optsV.IsObject()) {
    Napi::Object o = optsV.As<Napi::Object>();
    Napi::Array names = o.GetPropertyNames();
    for (uint32_t k = 0; k < names.Length(); k++) {
      const std::string key = names.Get(k).ToString();
      keys.push_back(key);
      values.push_back(o.Get(key).ToString());
    }
  }
  std::vector<const char*> kp, vp;
  for (size_t k = 0; k < keys.size(); k++) { kp.push_back(keys[k].c_str()); vp.push_back(values[k].c_str()); }
  Check(env, ort->SessionOptionsAppendExecutionProvider_V2(so, ortEnv, &device_.epDevice, 1, kp.data(), vp.data(), kp.size()),
        what + ": adding it to the session");
  Napi::Value noFallback = cuda.Get("disableCpuFallback");
  if (noFallback.IsBoolean() && noFallback.As<Napi::Boolean>().Value())
    Check(env, ort->AddSessionConfigEntry(so, "session.disable_cpu_ep_fallback", "1"), what + ": disableCpuFallback");
}

void Session::ReleaseAll() {
  if (!ort) return;
  for (auto& s : state_) {
    if (s.front) ort->ReleaseValue(s.front);
    if (s.back) ort->ReleaseValue(s.back);
    s = Slot{};
  }
  if (device_.binding) ort->ReleaseIoBinding(device_.binding);
  device_.binding = nullptr;
  if (device_.cpuInfo) ort->ReleaseMemoryInfo(device_.cpuInfo);
  device_.cpuInfo = nullptr;
  device_.alloc = nullptr;  // owned by the OrtEnv
  if (session_) ort->ReleaseSession(session_);
  session_ = nullptr;
}

void Session::RequireOpen(Napi::Env env) const {
  if (!session_) throw Napi::Error::New(env, label_ + ": session was released");
  if (busy) throw Napi::Error::New(env, label_ + ": a runAsync is in progress on this session (await it first)");
}

int Session::InputIndex(const std::string& name) const {
  for (size_t i = 0; i < in_.size(); i++)
    if (in_[i].name == name) return static_cast<int>(i);
  return -1;
}
int Session::OutputIndex(const std::string& name) const {
  for (size_t i = 0; i < out_.size(); i++)
    if (out_[i].name == name) return static_cast<int>(i);
  return -1;
}

// State lives in CPU memory from ORT's allocator, or on the device from the EP's shared allocator.
OrtValue* Session::NewStateValue(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims,
                                 const std::string& what) {
  const std::string msg = label_ + ": allocating state for '" + what + "'";
  if (!OnDevice()) return NewCpuTensor(env, type, dims, msg);
  OrtValue* v = nullptr;
  Check(env, ort->CreateTensorAsOrtValue(device_.alloc, dims.data(), dims.size(), type, &v), msg + " on the device");
  return v;
}

// Copies a JS tensor's data into a state value (host memcpy, or a host-to-device CopyTensors).
void Session::Upload(Napi::Env env, const JsTensor& t, OrtValue* dst, const std::string& what) {
  if (!t.byteLength) return;
  if (!IsDeviceValue(dst)) {
    std::memcpy(TensorData(env, dst), t.data, t.byteLength);
    return;
  }
  OrtValue* src = WrapCpu(env, t.type, t.dims, t.data, t.byteLength, what);
  OrtStatus* st = ort->CopyTensors(ortEnv, &src, &dst, nullptr, 1);
  ort->ReleaseValue(src);
  Check(env, st, what + ": copying to the device");
}

// A value as a JS tensor; device values go through a host copy (CopyTensors, synchronous).
Napi::Object Session::ValueToJs(Napi::Env env, OrtValue* v, const std::string& name) {
  if (!IsDeviceValue(v)) return ToJs(env, v, name);
  ONNXTensorElementDataType type;
  std::vector<int64_t> dims;
  TensorShape(env, v, &type, &dims);
  OrtValue* host = NewCpuTensor(env, type, dims, label_ + ": host copy of '" + name + "'");
  OrtStatus* st = ort->CopyTensors(ortEnv, &v, &host, nullptr, 1);
  if (st) {
    ort->ReleaseValue(host);
    Check(env, st, label_ + ": copying '" + name + "' from the device");
  }
  try {
    Napi::Object o = ToJs(env, host, name);
    ort->ReleaseValue(host);
    return o;
  } catch (...) {
    ort->ReleaseValue(host);
    throw;
  }
}

Napi::Array Session::InfoToJs(Napi::Env env, const std::vector<IOInfo>& infos) {
  Napi::Array a = Napi::Array::New(env, infos.size());
  for (size_t i = 0; i < infos.size(); i++) {
    const IOInfo& io = infos[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", io.name);
    o.Set("type", io.isTensor ? TypeToName(io.type) : "non-tensor");
    Napi::Array d = Napi::Array::New(env, io.dims.size());
    for (size_t k = 0; k < io.dims.size(); k++) {
      if (io.dims[k] >= 0) d.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(io.dims[k])));
      else if (!io.symbols[k].empty()) d.Set(static_cast<uint32_t>(k), io.symbols[k]);
      else d.Set(static_cast<uint32_t>(k), Napi::Number::New(env, -1));
    }
    o.Set("dims", d);
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Value Session::Inputs(const Napi::CallbackInfo& info) { return InfoToJs(info.Env(), in_); }
Napi::Value Session::Outputs(const Napi::CallbackInfo& info) { return InfoToJs(info.Env(), out_); }

// setCarry({outputName: inputName}): replaces all carried pairs ({} clears them). State already set is kept.
Napi::Value Session::SetCarry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "setCarry({outputName: inputName}, inPlace?: inputName[])");
  Napi::Object pairs = info[0].As<Napi::Object>();
  std::vector<int> target(out_.size(), -1), source(in_.size(), -1);
  Napi::Array keys = pairs.GetPropertyNames();
  for (uint32_t k = 0; k < keys.Length(); k++) {
    std::string o = keys.Get(k).ToString();
    Napi::Value iv = pairs.Get(o);
    if (!iv.IsString()) throw Napi::TypeError::New(env, "setCarry: the input carried from output '" + o + "' must be a name");
    std::string i = iv.As<Napi::String>();
    int oi = OutputIndex(o), ii = InputIndex(i);
    if (oi < 0) throw Napi::Error::New(env, label_ + ": carry: the model has no output '" + o + "'");
    if (ii < 0) throw Napi::Error::New(env, label_ + ": carry: the model has no input '" + i + "' (carried from output '" + o + "')");
    if (source[ii] >= 0)
      throw Napi::Error::New(env, label_ + ": carry: input '" + i + "' is carried from two outputs, '" + out_[source[ii]].name +
                                      "' and '" + o + "'");
    if (!in_[ii].isTensor || !out_[oi].isTensor || out_[oi].type != in_[ii].type || !DimsCompatible(out_[oi].dims, in_[ii].dims))
      throw Napi::Error::New(env, label_ + ": carry: output '" + o + "' (" + Describe(out_[oi]) + ") does not match input '" + i +
                                      "' (" + Describe(in_[ii]) + ")");
    target[oi] = ii;
    source[ii] = oi;
  }
  // in place: the run writes the output into the input's buffer. Only for pairs whose every other reader of the input
  // runs before the writer (the caller checks the graph: src/train/in-place.ts); a run that fails midway then leaves
  // the state partly updated (double-buffered pairs keep the old value).
  std::vector<bool> inPlace(in_.size(), false);
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (OnDevice()) throw Napi::Error::New(env, label_ + ": carry: in-place carrying is CPU only (not verified with device state)");
    if (!info[1].IsArray()) throw Napi::TypeError::New(env, "setCarry: inPlace must be an array of input names");
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) {
      std::string name = a.Get(k).ToString();
      int ii = InputIndex(name);
      if (ii < 0 || source[ii] < 0) throw Napi::Error::New(env, label_ + ": carry: '" + name + "' is not a carried input, so it cannot be carried in place");
      inPlace[ii] = true;
    }
  }
  carryTarget_ = std::move(target);
  carrySource_ = std::move(source);
  inPlace_ = std::move(inPlace);
  return env.Undefined();
}

// setState({inputName: tensor}): copies values in. Carried inputs start from them; other inputs keep them as fixed
// values for every run (until setState again). All tensors are checked before anything changes.
Napi::Value Session::SetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "setState({inputName: tensor})");
  Napi::Object vals = info[0].As<Napi::Object>();
  Napi::Array keys = vals.GetPropertyNames();
  std::vector<std::pair<int, JsTensor>> todo;
  for (uint32_t k = 0; k < keys.Length(); k++) {
    std::string name = keys.Get(k).ToString();
    int ii = InputIndex(name);
    if (ii < 0) throw Napi::Error::New(env, label_ + ": setState: the model has no input '" + name + "'");
    JsTensor t = ReadJsTensor(env, vals.Get(name), label_ + ": setState '" + name + "'");
    if (t.type != in_[ii].type || !DimsCompatible(t.dims, in_[ii].dims))
      throw Napi::Error::New(env, label_ + ": setState: '" + name + "' is " + TypeToName(t.type) + DimsString(t.dims) +
                                      " but the input is " + Describe(in_[ii]));
    todo.emplace_back(ii, t);
  }
  // JS cannot run between these reads and the copies below, so the pointers in `todo` stay valid.
  for (auto& [ii, t] : todo) {
    OrtValue* front = NewStateValue(env, t.type, t.dims, in_[ii].name);
    try {
      Upload(env, t, front, label_ + ": setState '" + in_[ii].name + "'");
    } catch (...) {
      ort->ReleaseValue(front);
      throw;
    }
    Slot& s = state_[ii];
    if (s.front) ort->ReleaseValue(s.front);
    if (s.back) ort->ReleaseValue(s.back);  // reallocated at the next run, in the new value's shape
    s.front = front;
    s.back = nullptr;
  }
  return env.Undefined();
}

// getState(names?): copies current values out (default: every input that holds state).
Napi::Value Session::GetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  Napi::Object out = Napi::Object::New(env);
  if (info.Length() > 0 && info[0].IsArray()) {
    Napi::Array names = info[0].As<Napi::Array>();
    for (uint32_t k = 0; k < names.Length(); k++) {
      std::string name = names.Get(k).ToString();
      int ii = InputIndex(name);
      if (ii < 0) throw Napi::Error::New(env, label_ + ": getState: the model has no input '" + name + "'");
      if (!state_[ii].front) throw Napi::Error::New(env, label_ + ": getState: input '" + name + "' has no value: call setState");
      out.Set(name, ValueToJs(env, state_[ii].front, name));
    }
  } else {
    for (size_t i = 0; i < in_.size(); i++)
      if (state_[i].front) out.Set(in_[i].name, ValueToJs(env, state_[i].front, in_[i].name));
  }
  return out;
}

void Session::Prepare(Napi::Env env, Napi::Value feedsV, Napi::Value fetchesV, bool copyFeeds, RunPlan& plan) {
  RequireOpen(env);
  if (!feedsV.IsUndefined() && !feedsV.IsNull() && !feedsV.IsObject())
    throw Napi::TypeError::New(env, "run(feeds: {inputName: tensor}, fetches?: string[])");
  Napi::Object feeds = feedsV.IsObject() ? feedsV.As<Napi::Object>() : Napi::Object::New(env);
  Napi::Array keys = feeds.GetPropertyNames();
  for (uint32_t k = 0; k < keys.Length(); k++) {
    std::string name = keys.Get(k).ToString();
    int ii = InputIndex(name);
    if (ii < 0) throw Napi::Error::New(env, label_ + ": run: the model has no input '" + name + "'");
    if (carrySource_[ii] >= 0)
      throw Napi::Error::New(env, label_ + ": run: input '" + name + "' is carried from output '" + out_[carrySource_[ii]].name +
                                      "'; it cannot be fed (change it with setState)");
    if (state_[ii].front)
      throw Napi::Error::New(env, label_ + ": run: input '" + name + "' holds native state; change it with setState, not as a feed");
  }
  std::vector<bool> want(out_.size(), false);
  if (fetchesV.IsArray()) {
    Napi::Array f = fetchesV.As<Napi::Array>();
    for (uint32_t k = 0; k < f.Length(); k++) {
      std::string name = f.Get(k).ToString();
      int oi = OutputIndex(name);
      if (oi < 0) throw Napi::Error::New(env, label_ + ": run: the model has no output '" + name + "'");
      want[oi] = true;
    }
  } else if (!fetchesV.IsUndefined() && !fetchesV.IsNull()) {
    throw Napi::TypeError::New(env, "run: fetches must be an array of output names");
  } else {
    for (size_t o = 0; o < out_.size(); o++) want[o] = carryTarget_[o] < 0;
  }
  try {
    for (size_t i = 0; i < in_.size(); i++) {
      const std::string& name = in_[i].name;
      plan.inNames.push_back(name.c_str());
      if (state_[i].front) {
        plan.inputs.push_back(state_[i].front);
        plan.ownedInput.push_back(false);
        continue;
      }
      if (carrySource_[i] >= 0) throw Napi::Error::New(env, label_ + ": carried input '" + name + "' has no value: call setState");
      if (!feeds.Has(name)) throw Napi::Error::New(env, label_ + ": run: input '" + name + "' is missing");
      JsTensor t = ReadJsTensor(env, feeds.Get(name), label_ + ": input '" + name + "'");
      if (t.type != in_[i].type)
        throw Napi::TypeError::New(env, label_ + ": input '" + name + "' must be " + TypeToName(in_[i].type) + ", got " +
                                            TypeToName(t.type));
      void* data = t.data;
      if (copyFeeds) {  // the JS buffer may change or be collected while the worker runs
        plan.copies.emplace_back(static_cast<uint8_t*>(t.data), static_cast<uint8_t*>(t.data) + t.byteLength);
        data = plan.copies.back().data();
      }
      plan.inputs.push_back(nullptr);
      plan.ownedInput.push_back(true);
      plan.inputs.back() = WrapCpu(env, t.type, t.dims, data, t.byteLength, label_ + ": input '" + name + "'");
    }
    for (size_t o = 0; o < out_.size(); o++) {
      int ii = carryTarget_[o];
      if (!want[o] && ii < 0) continue;  // never computed into JS unless asked for
      OrtValue* target = nullptr;
      if (ii >= 0) {
        Slot& s = state_[ii];
        if (!inPlace_[ii] && !s.back) {  // first run after setState: the back buffer takes the front's shape
          ONNXTensorElementDataType type;
          std::vector<int64_t> dims;
          TensorShape(env, s.front, &type, &dims);
          s.back = NewStateValue(env, type, dims, in_[ii].name);
        }
        target = inPlace_[ii] ? s.front : s.back;  // in place: written into the input's own buffer
      }
      plan.outNames.push_back(out_[o].name.c_str());
      plan.outIndex.push_back(static_cast<int>(o));
      plan.outputs.push_back(target);
      plan.toJs.push_back(want[o]);
    }
  } catch (...) {
    ReleasePlan(plan);
    throw;
  }
}

void Session::Execute(RunPlan& plan) {
  if (OnDevice()) return ExecuteBound(plan);
  OrtStatus* st = ort->Run(session_, nullptr, plan.inNames.data(), plan.inputs.data(), plan.inputs.size(),
                           plan.outNames.data(), plan.outNames.size(), plan.outputs.data());
  plan.error = StatusMessage(st, "running " + label_);
}

// Device state: inputs bound as they are (state fronts on the device; fed CPU values, which ORT copies over), carried
// outputs bound to their back buffers on the device, other outputs to CPU memory. Any thread (no JS here).
void Session::ExecuteBound(RunPlan& plan) {
  OrtIoBinding* b = device_.binding;
  ort->ClearBoundInputs(b);
  ort->ClearBoundOutputs(b);
  const std::string what = "running " + label_;
  auto failed = [&](OrtStatus* st) {
    if (!st) return false;
    plan.error = StatusMessage(st, what);
    return true;
  };
  for (size_t i = 0; i < plan.inputs.size(); i++)
    if (failed(ort->BindInput(b, plan.inNames[i], plan.inputs[i]))) return;
  for (size_t k = 0; k < plan.outputs.size(); k++) {
    OrtStatus* st = plan.outputs[k] ? ort->BindOutput(b, plan.outNames[k], plan.outputs[k])
                                    : ort->BindOutputToDevice(b, plan.outNames[k], device_.cpuInfo);
    if (failed(st)) return;
  }
  if (failed(ort->RunWithBinding(session_, nullptr, b))) return;
  // the device work must be done before JS reads outputs or getState copies the state out
  if (failed(ort->SynchronizeBoundOutputs(b))) return;
  OrtAllocator* alloc = nullptr;
  if (failed(ort->GetAllocatorWithDefaultOptions(&alloc))) return;
  OrtValue** values = nullptr;
  size_t count = 0;
  if (failed(ort->GetBoundOutputValues(b, alloc, &values, &count))) return;
  for (size_t k = 0; k < count; k++) {
    if (k < plan.outputs.size() && !plan.outputs[k]) plan.outputs[k] = values[k];  // ReleasePlan releases it
    else ort->ReleaseValue(values[k]);  // an extra reference to a back buffer
  }
  if (values) alloc->Free(alloc, values);
}

void Session::ReleasePlan(RunPlan& plan) {
  for (size_t i = 0; i < plan.inputs.size(); i++)
    if (plan.ownedInput[i] && plan.inputs[i]) ort->ReleaseValue(plan.inputs[i]);
  plan.inputs.clear();
  plan.ownedInput.clear();
  for (size_t k = 0; k < plan.outputs.size(); k++)
    if (plan.outputs[k] && carryTarget_[plan.outIndex[k]] < 0) ort->ReleaseValue(plan.outputs[k]);  // back buffers stay
  plan.outputs.clear();
  plan.copies.clear();
}

Napi::Value Session::Finish(Napi::Env env, RunPlan& plan) {
  if (!plan.error.empty()) {
    ReleasePlan(plan);
    throw Napi::Error::New(env, plan.error);
  }
  // Swap first, so the state is consistent whatever the conversions below do.
  for (size_t k = 0; k < plan.outputs.size(); k++) {
    int ii = carryTarget_[plan.outIndex[k]];
    if (ii < 0) continue;
    Slot& s = state_[ii];
    if (!inPlace_[ii]) std::swap(s.front, s.back);  // the value just written becomes the next input; the old input, the next target
  }
  Napi::Object result = Napi::Object::New(env);
  std::string convError;
  for (size_t k = 0; k < plan.outputs.size(); k++) {
    if (!plan.toJs[k]) continue;
    int o = plan.outIndex[k];
    OrtValue* v = carryTarget_[o] >= 0 ? state_[carryTarget_[o]].front : plan.outputs[k];
    try {
      result.Set(out_[o].name, ValueToJs(env, v, out_[o].name));
    } catch (const Napi::Error& e) {
      convError = label_ + ": output " + e.Message();
    }
  }
  ReleasePlan(plan);
  if (!convError.empty()) throw Napi::Error::New(env, convError);
  return result;
}

// run(feeds, fetches?) → {outputName: tensor}. Feeds are wrapped in place (no copy): JS cannot run meanwhile.
Napi::Value Session::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RunPlan plan;
  Prepare(env, info.Length() > 0 ? info[0] : env.Undefined(), info.Length() > 1 ? info[1] : env.Undefined(), false, plan);
  Execute(plan);
  return Finish(env, plan);
}

namespace {
class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, Session* s, Napi::Object self)
      : Napi::AsyncWorker(env, "ademamix.runAsync"), session_(s), deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(self);  // keeps the session (and its state) alive while the worker runs
  }
  RunPlan plan;
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { session_->Execute(plan); }
  void OnOK() override {
    session_->busy = false;
    try {
      deferred_.Resolve(session_->Finish(Env(), plan));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    session_->busy = false;
    session_->ReleasePlan(plan);
    deferred_.Reject(e.Value());
  }

 private:
  Session* session_;
  Napi::ObjectReference self_;
  Napi::Promise::Deferred deferred_;
};
}  // namespace

// runAsync(feeds, fetches?) → Promise. Feeds are copied, so the caller may refill its buffers at once. Until the promise
// settles the session is busy: run/setState/getState/setCarry/release throw.
Napi::Value Session::RunAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* w = new RunWorker(env, this, info.This().As<Napi::Object>());
  try {
    Prepare(env, info.Length() > 0 ? info[0] : env.Undefined(), info.Length() > 1 ? info[1] : env.Undefined(), true, w->plan);
  } catch (...) {
    delete w;
    throw;
  }
  busy = true;
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself after OnOK/OnError
  return p;
}

// endProfiling() → path of the profile JSON ORT wrote ("" when profiling was not enabled).
Napi::Value Session::EndProfiling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  OrtAllocator* alloc = nullptr;
  Check(env, ort->GetAllocatorWithDefaultOptions(&alloc), "default allocator");
  char* file = nullptr;
  Check(env, ort->SessionEndProfiling(session_, alloc, &file), label_ + ": ending profiling");
  std::string f = file ? file : "";
  if (file) alloc->Free(alloc, file);
  return Napi::String::New(env, f);
}

// release(): frees the session and its state now (idempotent); the finalizer does the same at GC.
Napi::Value Session::Release(const Napi::CallbackInfo& info) {
  if (busy) throw Napi::Error::New(info.Env(), label_ + ": cannot release while a runAsync is in progress");
  ReleaseAll();
  return info.Env().Undefined();
}

}  // namespace ademamix
