// Test stand-in for the CUDA execution provider's library on a machine without a GPU: it exports the plugin-EP entry
// points and registers one factory named CUDAExecutionProvider that offers no device (what ONNX Runtime reports for
// the real provider when no GPU is found). It lets the session addon's "no GPU" error path be tested anywhere; it is
// never used for running models.
#include "onnxruntime_c_api.h"  // includes onnxruntime_ep_c_api.h

namespace {

const OrtApi* api = nullptr;

struct NoDeviceFactory : OrtEpFactory {
  NoDeviceFactory() : OrtEpFactory{} {
    ort_version_supported = ORT_API_VERSION;
    GetName = [](const OrtEpFactory*) noexcept -> const char* { return "CUDAExecutionProvider"; };
    GetVendor = [](const OrtEpFactory*) noexcept -> const char* { return "ort-ademamix test stand-in"; };
    GetSupportedDevices = [](OrtEpFactory*, const OrtHardwareDevice* const*, size_t, OrtEpDevice**, size_t,
                             size_t* num) noexcept -> OrtStatus* {
      *num = 0;  // no GPU
      return nullptr;
    };
    CreateEp = [](OrtEpFactory*, const OrtHardwareDevice* const*, const OrtKeyValuePairs* const*, size_t,
                  const OrtSessionOptions*, const OrtLogger*, OrtEp**) noexcept -> OrtStatus* {
      return api->CreateStatus(ORT_NOT_IMPLEMENTED, "test stand-in: no device");
    };
    ReleaseEp = [](OrtEpFactory*, OrtEp*) noexcept {};
    GetVendorId = [](const OrtEpFactory*) noexcept -> uint32_t { return 0; };
    GetVersion = [](const OrtEpFactory*) noexcept -> const char* { return "0.0.0"; };
    ValidateCompiledModelCompatibilityInfo = [](OrtEpFactory*, const OrtHardwareDevice* const*, size_t, const char*,
                                                OrtCompiledModelCompatibility* c) noexcept -> OrtStatus* {
      *c = OrtCompiledModelCompatibility_EP_NOT_APPLICABLE;
      return nullptr;
    };
    CreateAllocator = [](OrtEpFactory*, const OrtMemoryInfo*, const OrtKeyValuePairs*, OrtAllocator** a) noexcept -> OrtStatus* {
      *a = nullptr;
      return nullptr;
    };
    ReleaseAllocator = [](OrtEpFactory*, OrtAllocator*) noexcept {};
    CreateDataTransfer = [](OrtEpFactory*, OrtDataTransferImpl** d) noexcept -> OrtStatus* {
      *d = nullptr;
      return nullptr;
    };
    IsStreamAware = [](const OrtEpFactory*) noexcept { return false; };
    CreateSyncStreamForDevice = [](OrtEpFactory*, const OrtMemoryDevice*, const OrtKeyValuePairs*,
                                   OrtSyncStreamImpl** s) noexcept -> OrtStatus* {
      *s = nullptr;
      return nullptr;
    };
  }
};

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* CreateEpFactories(const char*, const OrtApiBase* base,
                                                                               const OrtLogger*, OrtEpFactory** factories,
                                                                               size_t max_factories, size_t* num) {
  api = base->GetApi(ORT_API_VERSION);
  if (!api) return nullptr;
  if (max_factories < 1) return api->CreateStatus(ORT_INVALID_ARGUMENT, "no room for a factory");
  factories[0] = new NoDeviceFactory();
  *num = 1;
  return nullptr;
}

extern "C" __attribute__((visibility("default"))) OrtStatus* ReleaseEpFactory(OrtEpFactory* factory) {
  delete static_cast<NoDeviceFactory*>(factory);
  return nullptr;
}
