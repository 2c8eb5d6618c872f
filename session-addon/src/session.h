// Session: one ORT InferenceSession plus native state. Carried outputs are written into the back buffer of their
// input's double buffer and swapped after the run, so params and optimizer states never cross into JS per step.
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

// Everything one Run needs, prepared on the JS thread; Execute may run on a worker thread.
struct RunPlan {
  std::vector<const char*> inNames, outNames;
  std::vector<OrtValue*> inputs;     // some owned (fed), some borrowed (state)
  std::vector<bool> ownedInput;
  std::vector<OrtValue*> outputs;    // preallocated back buffers for carried outputs, else null
  std::vector<int> outIndex;         // session output index of each requested output
  std::vector<std::unique_ptr<HostTensor>> copies;  // async: owned copies of the fed JS data
  std::string error;
};

class Session : public Napi::ObjectWrap<Session> {
 public:
  static void Register(Napi::Env env, Napi::Object exports);
  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

  void Execute(RunPlan& plan);                       // any thread
  Napi::Value Finish(Napi::Env env, RunPlan& plan);  // JS thread: swap carried buffers, convert fetched outputs
  void ReleasePlan(RunPlan& plan);
  bool busy = false;

 private:
  struct Slot { OrtValue* front = nullptr; OrtValue* back = nullptr; };

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
  void ReleaseAll();
  void RequireOpen(Napi::Env env) const;
  int InputIndex(const std::string& name) const;
  int OutputIndex(const std::string& name) const;
  static Napi::Array InfoToJs(Napi::Env env, const std::vector<IOInfo>& infos);

  OrtSession* session_ = nullptr;
  std::string label_;  // model path or "<bytes>", for errors
  std::vector<IOInfo> in_, out_;
  std::vector<Slot> state_;        // by input index
  std::vector<int> carryTarget_;   // by output index: input index it feeds, or -1
  std::vector<int> carrySource_;   // by input index: output index that feeds it, or -1
};

}  // namespace ademamix
