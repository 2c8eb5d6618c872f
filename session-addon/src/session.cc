#include "session.h"
#include <cstring>

namespace ademamix {

static GraphOptimizationLevel ParseOptLevel(Napi::Env env, const std::string& s) {
  if (s == "disabled") return ORT_DISABLE_ALL;
  if (s == "basic") return ORT_ENABLE_BASIC;
  if (s == "extended") return ORT_ENABLE_EXTENDED;
  if (s == "all") return ORT_ENABLE_ALL;
  throw Napi::TypeError::New(env, "graphOptimizationLevel must be disabled|basic|extended|all, got '" + s + "'");
}

// Metadata getters that cannot fail on a valid tensor info; a status would only leak.
static void Ok(OrtStatus* st) { if (st) ort->ReleaseStatus(st); }

static void ReadInfos(Napi::Env env, OrtSession* s, bool inputs, std::vector<IOInfo>* out) {
  OrtAllocator* alloc = nullptr;
  Check(env, ort->GetAllocatorWithDefaultOptions(&alloc), "allocator");
  size_t n = 0;
  Check(env, inputs ? ort->SessionGetInputCount(s, &n) : ort->SessionGetOutputCount(s, &n), "io count");
  for (size_t i = 0; i < n; i++) {
    IOInfo info;
    char* name = nullptr;
    Check(env, inputs ? ort->SessionGetInputName(s, i, alloc, &name) : ort->SessionGetOutputName(s, i, alloc, &name), "io name");
    info.name = name;
    alloc->Free(alloc, name);
    OrtTypeInfo* ti = nullptr;
    Check(env, inputs ? ort->SessionGetInputTypeInfo(s, i, &ti) : ort->SessionGetOutputTypeInfo(s, i, &ti), "io type");
    const OrtTensorTypeAndShapeInfo* tsi = nullptr;
    Ok(ort->CastTypeInfoToTensorInfo(ti, &tsi));
    if (tsi) {
      Ok(ort->GetTensorElementType(tsi, &info.type));
      size_t nd = 0;
      Ok(ort->GetDimensionsCount(tsi, &nd));
      info.dims.assign(nd, 0);
      Ok(ort->GetDimensions(tsi, info.dims.data(), nd));
      std::vector<const char*> sym(nd, nullptr);
      Ok(ort->GetSymbolicDimensions(tsi, sym.data(), nd));
      for (size_t k = 0; k < nd; k++) info.symbols.push_back(sym[k] ? sym[k] : "");
    } else {
      info.isTensor = false;
    }
    ort->ReleaseTypeInfo(ti);
    out->push_back(std::move(info));
  }
}

void Session::Register(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Session", {
      InstanceMethod("inputs", &Session::Inputs), InstanceMethod("outputs", &Session::Outputs),
      InstanceMethod("setCarry", &Session::SetCarry), InstanceMethod("setState", &Session::SetState),
      InstanceMethod("getState", &Session::GetState), InstanceMethod("run", &Session::Run),
      InstanceMethod("runAsync", &Session::RunAsync), InstanceMethod("endProfiling", &Session::EndProfiling),
      InstanceMethod("release", &Session::Release)});
  exports.Set("Session", cls);
}

// new Session(model: string | Uint8Array, options: {...})
Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  label_ = info[0].IsString() ? std::string(info[0].As<Napi::String>()) : std::string("<model bytes>");
  OrtSessionOptions* so = nullptr;
  Check(env, ort->CreateSessionOptions(&so), "session options");
  // Owns `so` for the rest of the constructor, whatever throws.
  std::unique_ptr<OrtSessionOptions, void (*)(OrtSessionOptions*)> guard(so, [](OrtSessionOptions* p) { ort->ReleaseSessionOptions(p); });
  auto num = [&](const char* k) { return opts.Get(k).IsNumber() ? opts.Get(k).As<Napi::Number>().Int32Value() : -1; };
  if (num("intraOpThreads") >= 0) Check(env, ort->SetIntraOpNumThreads(so, num("intraOpThreads")), label_ + ": intraOpThreads");
  if (num("interOpThreads") >= 0) Check(env, ort->SetInterOpNumThreads(so, num("interOpThreads")), label_ + ": interOpThreads");
  if (opts.Get("graphOptimizationLevel").IsString())
    Check(env, ort->SetSessionGraphOptimizationLevel(so, ParseOptLevel(env, opts.Get("graphOptimizationLevel").As<Napi::String>())), "optimization level");
  if (opts.Get("executionMode").IsString()) {
    std::string m = opts.Get("executionMode").As<Napi::String>();
    Check(env, ort->SetSessionExecutionMode(so, m == "parallel" ? ORT_PARALLEL : ORT_SEQUENTIAL), "execution mode");
  }
  if (opts.Get("profilingPrefix").IsString()) {
    std::string p = opts.Get("profilingPrefix").As<Napi::String>();
    Check(env, ort->EnableProfiling(so, p.c_str()), "enable profiling");
  }
  if (opts.Get("opsLibrary").IsString()) {
    std::string lib = opts.Get("opsLibrary").As<Napi::String>();
    Check(env, ort->RegisterCustomOpsLibrary_V2(so, lib.c_str()), "registering op library " + lib);
  }
  if (info[0].IsString()) {
    std::string path = info[0].As<Napi::String>();
    Check(env, ort->CreateSession(ortEnv, path.c_str(), so, &session_), "loading model " + path);
  } else if (info[0].IsTypedArray()) {
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    const uint8_t* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    Check(env, ort->CreateSessionFromArray(ortEnv, p, ta.ByteLength(), so, &session_), "loading model from bytes");
  } else {
    throw Napi::TypeError::New(env, "Session(model: string | Uint8Array, options?)");
  }
  ReadInfos(env, session_, true, &in_);
  ReadInfos(env, session_, false, &out_);
  state_.assign(in_.size(), Slot{});
  carrySource_.assign(in_.size(), -1);
  carryTarget_.assign(out_.size(), -1);
}

Session::~Session() { ReleaseAll(); }

void Session::ReleaseAll() {
  if (!ort) return;
  for (auto& s : state_) {
    if (s.front) ort->ReleaseValue(s.front);
    if (s.back) ort->ReleaseValue(s.back);
    s = Slot{};
  }
  if (session_) ort->ReleaseSession(session_);
  session_ = nullptr;
}

void Session::RequireOpen(Napi::Env env) const {
  if (!session_) throw Napi::Error::New(env, label_ + ": session was released");
  if (busy) throw Napi::Error::New(env, label_ + ": a run is in progress on this session");
}

int Session::InputIndex(const std::string& name) const {
  for (size_t i = 0; i < in_.size(); i++) if (in_[i].name == name) return static_cast<int>(i);
  return -1;
}
int Session::OutputIndex(const std::string& name) const {
  for (size_t i = 0; i < out_.size(); i++) if (out_[i].name == name) return static_cast<int>(i);
  return -1;
}

Napi::Array Session::InfoToJs(Napi::Env env, const std::vector<IOInfo>& infos) {
  Napi::Array a = Napi::Array::New(env, infos.size());
  for (size_t i = 0; i < infos.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", infos[i].name);
    o.Set("type", infos[i].isTensor ? TypeToName(infos[i].type) : "non-tensor");
    Napi::Array d = Napi::Array::New(env, infos[i].dims.size());
    for (size_t k = 0; k < infos[i].dims.size(); k++) {
      if (infos[i].dims[k] >= 0) d.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(infos[i].dims[k])));
      else if (!infos[i].symbols[k].empty()) d.Set(static_cast<uint32_t>(k), infos[i].symbols[k]);
      else d.Set(static_cast<uint32_t>(k), Napi::Number::New(env, -1));
    }
    o.Set("dims", d);
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Value Session::Inputs(const Napi::CallbackInfo& info) { return InfoToJs(info.Env(), in_); }
Napi::Value Session::Outputs(const Napi::CallbackInfo& info) { return InfoToJs(info.Env(), out_); }

static bool DimsCompatible(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) if (a[i] >= 0 && b[i] >= 0 && a[i] != b[i]) return false;
  return true;
}

// setCarry({outputName: inputName}): replaces the carried pairs.
Napi::Value Session::SetCarry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "setCarry({outputName: inputName})");
  Napi::Object pairs = info[0].As<Napi::Object>();
  std::vector<int> target(out_.size(), -1), source(in_.size(), -1);
  Napi::Array keys = pairs.GetPropertyNames();
  for (uint32_t k = 0; k < keys.Length(); k++) {
    std::string o = keys.Get(k).As<Napi::String>();
    Napi::Value iv = pairs.Get(o);
    if (!iv.IsString()) throw Napi::TypeError::New(env, "setCarry: the input for output '" + o + "' must be a name");
    std::string i = iv.As<Napi::String>();
    int oi = OutputIndex(o), ii = InputIndex(i);
    if (oi < 0) throw Napi::Error::New(env, label_ + ": carry: the model has no output '" + o + "'");
    if (ii < 0) throw Napi::Error::New(env, label_ + ": carry: the model has no input '" + i + "' (for output '" + o + "')");
    if (source[ii] >= 0) throw Napi::Error::New(env, label_ + ": carry: input '" + i + "' is fed by two outputs");
    if (out_[oi].type != in_[ii].type || !DimsCompatible(out_[oi].dims, in_[ii].dims))
      throw Napi::Error::New(env, label_ + ": carry: output '" + o + "' (" + TypeToName(out_[oi].type) + DimsString(out_[oi].dims) +
                                      ") does not match input '" + i + "' (" + TypeToName(in_[ii].type) + DimsString(in_[ii].dims) + ")");
    target[oi] = ii;
    source[ii] = oi;
  }
  carryTarget_ = target;
  carrySource_ = source;
  return env.Undefined();
}

// setState({inputName: tensor}): copies values in; they persist across runs (and are swapped when carried).
Napi::Value Session::SetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "setState({inputName: tensor})");
  Napi::Object vals = info[0].As<Napi::Object>();
  Napi::Array keys = vals.GetPropertyNames();
  for (uint32_t k = 0; k < keys.Length(); k++) {
    std::string name = keys.Get(k).As<Napi::String>();
    int ii = InputIndex(name);
    if (ii < 0) throw Napi::Error::New(env, label_ + ": setState: the model has no input '" + name + "'");
    JsTensor t = ReadJsTensor(env, vals.Get(name), "setState '" + name + "'");
    if (t.type != in_[ii].type || !DimsCompatible(t.dims, in_[ii].dims))
      throw Napi::Error::New(env, label_ + ": setState: '" + name + "' is " + TypeToName(t.type) + DimsString(t.dims) +
                                      " but the input is " + TypeToName(in_[ii].type) + DimsString(in_[ii].dims));
    OrtValue* front = NewCpuTensor(env, t.type, t.dims, "setState '" + name + "'");
    if (t.byteLength) std::memcpy(TensorData(env, front), t.data, t.byteLength);
    OrtValue* back = nullptr;
    if (carrySource_[ii] >= 0) back = NewCpuTensor(env, t.type, t.dims, "setState '" + name + "'");
    Slot& s = state_[ii];
    if (s.front) ort->ReleaseValue(s.front);
    if (s.back) ort->ReleaseValue(s.back);
    s.front = front;
    s.back = back;
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
      std::string name = names.Get(k).As<Napi::String>();
      int ii = InputIndex(name);
      if (ii < 0) throw Napi::Error::New(env, label_ + ": getState: the model has no input '" + name + "'");
      if (!state_[ii].front) throw Napi::Error::New(env, label_ + ": getState: input '" + name + "' holds no state");
      out.Set(name, ToJs(env, state_[ii].front, name));
    }
  } else {
    for (size_t i = 0; i < in_.size(); i++)
      if (state_[i].front) out.Set(in_[i].name, ToJs(env, state_[i].front, in_[i].name));
  }
  return out;
}

void Session::Prepare(Napi::Env env, Napi::Value feedsV, Napi::Value fetchesV, bool copyFeeds, RunPlan& plan) {
  RequireOpen(env);
  Napi::Object feeds = feedsV.IsObject() ? feedsV.As<Napi::Object>() : Napi::Object::New(env);
  Napi::Array keys = feeds.GetPropertyNames();
  for (uint32_t k = 0; k < keys.Length(); k++) {
    std::string name = keys.Get(k).As<Napi::String>();
    int ii = InputIndex(name);
    if (ii < 0) throw Napi::Error::New(env, label_ + ": run: the model has no input '" + name + "'");
    if (state_[ii].front)
      throw Napi::Error::New(env, label_ + ": run: input '" + name + "' holds native state" +
                                      (carrySource_[ii] >= 0 ? " (carried)" : "") + "; change it with setState, not as a feed");
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
      if (!feeds.Has(name)) {
        if (carrySource_[i] >= 0)
          throw Napi::Error::New(env, label_ + ": carried input '" + name + "' has no value: call setState");
        throw Napi::Error::New(env, label_ + ": run: input '" + name + "' is missing");
      }
      JsTensor t = ReadJsTensor(env, feeds.Get(name), "input '" + name + "'");
      if (t.type != in_[i].type)
        throw Napi::TypeError::New(env, label_ + ": input '" + name + "' must be " + TypeToName(in_[i].type) + ", got " + TypeToName(t.type));
      void* data = t.data;
      if (copyFeeds) {
        auto h = std::make_unique<HostTensor>();
        h->bytes.assign(static_cast<uint8_t*>(t.data), static_cast<uint8_t*>(t.data) + t.byteLength);
        data = h->bytes.data();
        plan.copies.push_back(std::move(h));
      }
      plan.inputs.push_back(WrapCpu(env, t.type, t.dims, data, t.byteLength, "input '" + name + "'"));
      plan.ownedInput.push_back(true);
    }
    // requested outputs (default: all non-carried), then the carried ones
    std::vector<bool> want(out_.size(), false);
    if (fetchesV.IsArray()) {
      Napi::Array f = fetchesV.As<Napi::Array>();
      for (uint32_t k = 0; k < f.Length(); k++) {
        std::string name = f.Get(k).As<Napi::String>();
        int oi = OutputIndex(name);
        if (oi < 0) throw Napi::Error::New(env, label_ + ": run: the model has no output '" + name + "'");
        want[oi] = true;
      }
    } else {
      for (size_t o = 0; o < out_.size(); o++) want[o] = carryTarget_[o] < 0;
    }
    for (size_t o = 0; o < out_.size(); o++) {
      if (!want[o] && carryTarget_[o] < 0) continue;
      plan.outNames.push_back(out_[o].name.c_str());
      plan.outIndex.push_back(static_cast<int>(o));
      plan.outputs.push_back(carryTarget_[o] >= 0 ? state_[carryTarget_[o]].back : nullptr);
    }
  } catch (...) {
    ReleasePlan(plan);
    throw;
  }
}

void Session::Execute(RunPlan& plan) {
  OrtStatus* st = ort->Run(session_, nullptr, plan.inNames.data(), plan.inputs.data(), plan.inputs.size(),
                           plan.outNames.data(), plan.outNames.size(), plan.outputs.data());
  plan.error = StatusMessage(st, "running " + label_);
}

void Session::ReleasePlan(RunPlan& plan) {
  for (size_t i = 0; i < plan.inputs.size(); i++)
    if (plan.ownedInput[i] && plan.inputs[i]) ort->ReleaseValue(plan.inputs[i]);
  plan.inputs.clear();
  for (size_t k = 0; k < plan.outputs.size(); k++) {
    // preallocated back buffers belong to the state; anything ORT allocated is ours to free
    int o = plan.outIndex[k];
    bool isBack = carryTarget_[o] >= 0 && plan.outputs[k] == state_[carryTarget_[o]].back;
    if (plan.outputs[k] && !isBack) ort->ReleaseValue(plan.outputs[k]);
  }
  plan.outputs.clear();
}

Napi::Value Session::Finish(Napi::Env env, RunPlan& plan) {
  if (!plan.error.empty()) {
    ReleasePlan(plan);
    throw Napi::Error::New(env, plan.error);
  }
  Napi::Object result = Napi::Object::New(env);
  std::string convError;
  for (size_t k = 0; k < plan.outputs.size(); k++) {
    int o = plan.outIndex[k];
    int ii = carryTarget_[o];
    if (ii >= 0) {
      // double buffer: the value just written becomes the next input; the old input becomes the next target
      Slot& s = state_[ii];
      OrtValue* written = plan.outputs[k];
      OrtValue* old = s.front;
      s.front = written;
      s.back = old;
      plan.outputs[k] = nullptr;
      continue;
    }
    try {
      result.Set(out_[o].name, ToJs(env, plan.outputs[k], out_[o].name));
    } catch (const Napi::Error& e) {
      convError = e.Message();
    }
  }
  ReleasePlan(plan);
  if (!convError.empty()) throw Napi::Error::New(env, convError);
  return result;
}

// run(feeds, fetches?) → {outputName: tensor}
Napi::Value Session::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RunPlan plan;
  Prepare(env, info.Length() > 0 ? info[0] : env.Undefined(), info.Length() > 1 ? info[1] : env.Undefined(), false, plan);
  Execute(plan);
  return Finish(env, plan);
}

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, Session* s, Napi::Object self) : Napi::AsyncWorker(env), session_(s), deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(self);
  }
  RunPlan plan;
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { session_->Execute(plan); }
  void OnOK() override {
    Napi::Env env = Env();
    session_->busy = false;
    try {
      deferred_.Resolve(session_->Finish(env, plan));
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
  Napi::ObjectReference self_;  // keeps the session alive while the worker runs
  Napi::Promise::Deferred deferred_;
};

// runAsync(feeds, fetches?) → Promise; the feeds are copied, so the caller may reuse its buffers at once.
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
  w->Queue();
  return p;
}

Napi::Value Session::EndProfiling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  OrtAllocator* alloc = nullptr;
  Check(env, ort->GetAllocatorWithDefaultOptions(&alloc), "allocator");
  char* file = nullptr;
  Check(env, ort->SessionEndProfiling(session_, alloc, &file), label_ + ": end profiling");
  std::string f = file ? file : "";
  if (file) alloc->Free(alloc, file);
  return Napi::String::New(env, f);
}

Napi::Value Session::Release(const Napi::CallbackInfo& info) {
  if (busy) throw Napi::Error::New(info.Env(), label_ + ": cannot release while a run is in progress");
  ReleaseAll();
  return info.Env().Undefined();
}

}  // namespace ademamix
