// Session: one ORT session plus native state. A carried output is written (as a preallocated Run output) into the
// back buffer of its input's double buffer, and the buffers swap after the run, so parameters and optimizer state
// never cross into JS per step.
//
// Where the state lives: on the CPU (default) it is CPU OrtValues and Execute calls Run with plain arrays. With
// executionProvider {cuda: ...} it lives in device memory from the CUDA EP's shared allocator (NewStateValue), runs
// bind it through IoBinding (ExecuteBound: fed CPU values are copied in by ORT, fetched outputs come back to the
// CPU), and setState/getState copy host <-> device with CopyTensors (Upload/ValueToJs). Nothing else depends on it.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "tensors.h"

namespace ademamix {

struct IOInfo {
  std::string name;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> dims;         // -1 where symbolic or unknown
  std::vector<std::string> symbols;  // symbolic dim names ("" where none)
  bool isTensor = true;
};

// Everything one Run needs, prepared on the JS thread; Execute may then run on a worker thread.
struct RunPlan {
  std::vector<const char*> inNames, outNames;  // point into Session::in_/out_ (fixed for the session's life)
  std::vector<OrtValue*> inputs;               // fed values (owned) and state fronts (borrowed)
  std::vector<bool> ownedInput;
  std::vector<OrtValue*> outputs;  // carried: the state's back buffer (borrowed); else null, then ORT's (owned)
  std::vector<int> outIndex;       // session output index of each entry of outputs
  std::vector<bool> toJs;          // copy this output to JS (device values: through a host copy)
  std::vector<std::vector<uint8_t>> copies;  // runAsync: owned copies of the fed data
  std::string error;               // set by Execute
};

class Session : public Napi::ObjectWrap<Session> {
 public:
  static void Register(Napi::Env env, Napi::Object exports);
  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

  void Execute(RunPlan& plan);                       // any thread
  Napi::Value Finish(Napi::Env env, RunPlan& plan);  // JS thread: swap carried buffers, convert fetched outputs
  void ReleasePlan(RunPlan& plan);
  bool busy = false;                                 // a runAsync is in flight: state and session are in use

 private:
  struct Slot { OrtValue* front = nullptr; OrtValue* back = nullptr; };  // front: current value; back: next output

  Napi::Value Inputs(const Napi::CallbackInfo& info);
  Napi::Value Outputs(const Napi::CallbackInfo& info);
  Napi::Value SetCarry(const Napi::CallbackInfo& info);
  Napi::Value SetState(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value RunAsync(const Napi::CallbackInfo& info);
  Napi::Value EndProfiling(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);

  void Prepare(Napi::Env env, Napi::Value feeds, Napi::Value fetches, bool copyFeeds, RunPlan& plan);
  OrtValue* NewStateValue(Napi::Env env, ONNXTensorElementDataType type, const std::vector<int64_t>& dims, const std::string& what);
  void AppendCuda(Napi::Env env, OrtSessionOptions* so, Napi::Object cuda, const std::string& opening);
  void ExecuteBound(RunPlan& plan);                                       // device state: IoBinding
  void Upload(Napi::Env env, const JsTensor& t, OrtValue* dst, const std::string& what);   // JS data -> state value
  Napi::Object ValueToJs(Napi::Env env, OrtValue* v, const std::string& name);             // any device -> JS
  bool OnDevice() const { return device_.alloc != nullptr; }
  void ReleaseAll();
  void RequireOpen(Napi::Env env) const;
  int InputIndex(const std::string& name) const;
  int OutputIndex(const std::string& name) const;
  static Napi::Array InfoToJs(Napi::Env env, const std::vector<IOInfo>& infos);

  OrtSession* session_ = nullptr;
  std::string label_;  // model path or "<model bytes>", for errors
  std::vector<IOInfo> in_, out_;
  std::vector<Slot> state_;       // by input index
  std::vector<int> carryTarget_;  // by output index: the input it feeds, or -1
  std::vector<int> carrySource_;  // by input index: the output that feeds it, or -1
  // by input index: carried in place (its output is written into the input's own buffer; no back buffer, no swap)
  std::vector<bool> inPlace_;

  // Device execution (CUDA EP); all null on the CPU.
  struct Device {
    const OrtEpDevice* epDevice = nullptr;  // owned by the OrtEnv
    const OrtMemoryInfo* memInfo = nullptr; // owned by the OrtEpDevice
    OrtAllocator* alloc = nullptr;          // the EP's shared device allocator, owned by the OrtEnv
    OrtIoBinding* binding = nullptr;
    OrtMemoryInfo* cpuInfo = nullptr;       // where fetched outputs go
  } device_;
};

}  // namespace ademamix
