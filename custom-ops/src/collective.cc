// The collective ops of com.ademamix, for data-parallel training over MPI:
//   AllReduce(x_0..x_n-1) → y_i = Σ_ranks x_i (reduction "sum") or that / world size ("mean"), y_i shaped like x_i.
//   ReduceScatter(x_0..)  → y_i: this rank's slice of the reduced, flattened x_i: elements [r·k_i, (r+1)·k_i) with
//                           k_i = ceil(numel(x_i) / world_size), zero-padded past the end (attribute world_size).
//   AllGather(s_0..)      → y_i: the flat concatenation over ranks of the slices s_i ([k_i] each), cut to sizes[i].
// Each node makes one MPI call over one flat bucket holding all its tensors (not one call per tensor). The reduction
// runs on host buffers; on CUDA the bucket is staged through host memory on ORT's compute stream.
//
// MPI is loaded on first use (libademamix_mpi.so, next to this library or ADEMAMIX_MPI_LIBRARY) and only in a process
// that mpirun started with more than one rank (OMPI_COMM_WORLD_SIZE > 1); elsewhere the world is this process alone
// and the ops copy, as their function bodies do.
#include "ademamix/collective.h"

#include <dlfcn.h>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>
#include "ademamix/mpi_api.h"

namespace ademamix {
namespace {

const OrtApi* oapi = nullptr;
constexpr auto F32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;

#define COLL_RETURN_IF(expr)                 \
  do {                                       \
    if (OrtStatus* _st = (expr)) return _st; \
  } while (0)

OrtStatus* Fail(const std::string& msg) { return oapi->CreateStatus(ORT_RUNTIME_EXCEPTION, msg.c_str()); }

struct World {
  const AdemamixMpiApi* mpi = nullptr;  // null: a world of one process
  int rank = 0, size = 1;
  std::string error;  // why the world could not be joined (reported by every collective node)
};

std::string OwnDir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&AddCollectiveOps), &info) && info.dli_fname) {
    std::string p = info.dli_fname;
    const auto slash = p.rfind('/');
    if (slash != std::string::npos) return p.substr(0, slash);
  }
  return ".";
}

World Join() {
  World w;
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!n || std::atoi(n) <= 1) return w;
  const char* env = std::getenv("ADEMAMIX_MPI_LIBRARY");
  const std::string path = env && *env ? env : OwnDir() + "/" ADEMAMIX_MPI_LIBRARY;
  // RTLD_GLOBAL: Open MPI's components are dlopen'ed by libmpi and need its symbols in the global scope
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    const char* e = dlerror();
    w.error = "this process is rank of an MPI world of " + std::string(n) + " but the MPI library " + path +
              " cannot be loaded (" + (e ? e : "dlopen failed") + "); build with Open MPI installed (libopenmpi-dev)";
    return w;
  }
  auto get = reinterpret_cast<AdemamixMpiGetApi>(dlsym(lib, "AdemamixMpiApiGet"));
  const AdemamixMpiApi* api = get ? get() : nullptr;
  if (!api || api->version != ADEMAMIX_MPI_API_VERSION) {
    w.error = path + " is not a compatible libademamix_mpi (API version " + std::to_string(ADEMAMIX_MPI_API_VERSION) + ")";
    return w;
  }
  char err[512] = {0};
  if (api->init(&w.rank, &w.size, err, sizeof err)) { w.error = err; return w; }
  w.mpi = api;
  return w;
}

const World& GetWorld() {
  static std::once_flag once;
  static World w;
  std::call_once(once, [] { w = Join(); });
  return w;
}

enum class Kind { kAllReduce, kReduceScatter, kAllGather };
const char* KindName(Kind k) { return k == Kind::kAllReduce ? "AllReduce" : k == Kind::kReduceScatter ? "ReduceScatter" : "AllGather"; }

struct Tensor {
  std::vector<int64_t> dims;
  size_t count = 0;
};

OrtStatus* Describe(const OrtValue* v, Tensor* t) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  COLL_RETURN_IF(oapi->GetTensorTypeAndShape(v, &info));
  size_t rank = 0;
  OrtStatus* st = oapi->GetDimensionsCount(info, &rank);
  if (!st) { t->dims.resize(rank); st = oapi->GetDimensions(info, t->dims.data(), rank); }
  if (!st) st = oapi->GetTensorShapeElementCount(info, &t->count);
  oapi->ReleaseTensorTypeAndShapeInfo(info);
  return st;
}

class CollectiveKernel {
 public:
  CollectiveKernel(Kind kind, bool cuda, const OrtKernelInfo* info) : kind_(kind), cuda_(cuda) {
    size_t len = 0;
    label_ = KindName(kind);
    if (OrtStatus* st = oapi->KernelInfo_GetNodeName(info, nullptr, &len)) oapi->ReleaseStatus(st);
    else if (len > 1) {
      std::string name(len, '\0');
      if (OrtStatus* st2 = oapi->KernelInfo_GetNodeName(info, name.data(), &len)) oapi->ReleaseStatus(st2);
      else label_ += " '" + std::string(name.c_str()) + "'";
    }
    char red[16] = {0};
    size_t redLen = sizeof red;
    if (OrtStatus* st = oapi->KernelInfoGetAttribute_string(info, "reduction", red, &redLen)) {
      oapi->ReleaseStatus(st);
      std::strcpy(red, "mean");
    }
    reduction_ = red;
    int64_t w = 1;
    if (OrtStatus* st = oapi->KernelInfoGetAttribute_int64(info, "world_size", &w)) { oapi->ReleaseStatus(st); w = 0; }
    worldAttr_ = w;
    if (kind == Kind::kAllGather) {
      size_t n = 0;
      if (OrtStatus* st = oapi->KernelInfoGetAttributeArray_int64(info, "sizes", nullptr, &n)) oapi->ReleaseStatus(st);
      sizes_.resize(n);
      if (n) {
        if (OrtStatus* st = oapi->KernelInfoGetAttributeArray_int64(info, "sizes", sizes_.data(), &n)) { oapi->ReleaseStatus(st); sizes_.clear(); }
      }
    }
  }

  OrtStatus* Compute(OrtKernelContext* ctx) {
    if (reduction_ != "sum" && reduction_ != "mean") return Fail(label_ + ": reduction must be 'sum' or 'mean', got '" + reduction_ + "'");
    const World& w = GetWorld();
    if (!w.error.empty()) return Fail(label_ + ": " + w.error);
    const int64_t N = w.size;
    if (kind_ != Kind::kAllReduce && worldAttr_ != N) {
      return Fail(label_ + ": the graph was built for a world of " + std::to_string(worldAttr_) + " ranks; this process is in a world of " +
                  std::to_string(N) + " (rebuild the training graph for the world it runs in)");
    }
    size_t n = 0;
    COLL_RETURN_IF(oapi->KernelContext_GetInputCount(ctx, &n));
    if (kind_ == Kind::kAllGather && sizes_.size() != n) {
      return Fail(label_ + ": attribute 'sizes' lists " + std::to_string(sizes_.size()) + " sizes for " + std::to_string(n) + " inputs");
    }
    void* stream = nullptr;
#if defined(ADEMAMIX_WITH_CUDA)
    if (cuda_) COLL_RETURN_IF(oapi->KernelContext_GetGPUComputeStream(ctx, &stream));
#endif
    // inputs as host pointers: ORT's buffers on the CPU, staged copies on CUDA
    std::vector<Tensor> in(n);
    std::vector<const float*> src(n);
    staged_.resize(cuda_ ? n : 0);
    for (size_t i = 0; i < n; i++) {
      const OrtValue* v = nullptr;
      COLL_RETURN_IF(oapi->KernelContext_GetInput(ctx, i, &v));
      COLL_RETURN_IF(Describe(v, &in[i]));
      const void* p = nullptr;
      COLL_RETURN_IF(oapi->GetTensorData(v, &p));
      src[i] = static_cast<const float*>(p);
      if (cuda_) {
        staged_[i].resize(in[i].count);
        COLL_RETURN_IF(Copy(staged_[i].data(), p, in[i].count * 4, 0, stream));
        src[i] = staged_[i].data();
      }
    }
    if (cuda_) COLL_RETURN_IF(Sync(stream));
    // output shapes; offsets of each tensor in the bucket (per-rank blocks for ReduceScatter / AllGather)
    std::vector<std::vector<int64_t>> outDims(n);
    std::vector<size_t> k(n), off(n + 1, 0);
    for (size_t i = 0; i < n; i++) {
      if (kind_ == Kind::kAllReduce) { outDims[i] = in[i].dims; k[i] = in[i].count; }
      else if (kind_ == Kind::kReduceScatter) { k[i] = (in[i].count + N - 1) / N; outDims[i] = {static_cast<int64_t>(k[i])}; }
      else {
        k[i] = (static_cast<size_t>(sizes_[i]) + N - 1) / N;
        if (in[i].dims.size() != 1 || in[i].count != k[i]) {
          return Fail(label_ + ": input " + std::to_string(i) + " must be a slice of " + std::to_string(k[i]) + " elements (ceil(" +
                      std::to_string(sizes_[i]) + " / " + std::to_string(N) + ")), got " + std::to_string(in[i].count));
        }
        outDims[i] = {sizes_[i]};
      }
      off[i + 1] = off[i] + k[i];
    }
    const size_t K = off[n];
    std::vector<float*> dst(n);
    std::vector<OrtValue*> outs(n);
    outStaged_.resize(cuda_ ? n : 0);
    for (size_t i = 0; i < n; i++) {
      COLL_RETURN_IF(oapi->KernelContext_GetOutput(ctx, i, outDims[i].data(), outDims[i].size(), &outs[i]));
      void* p = nullptr;
      COLL_RETURN_IF(oapi->GetTensorMutableData(outs[i], &p));
      size_t count = 1;
      for (auto d : outDims[i]) count *= static_cast<size_t>(d);
      if (cuda_) { outStaged_[i].resize(count); dst[i] = outStaged_[i].data(); }
      else dst[i] = static_cast<float*>(p);
    }
    char err[512] = {0};
    const float scale = reduction_ == "mean" ? 1.0f / static_cast<float>(N) : 1.0f;
    if (kind_ == Kind::kAllReduce) {
      bucket_.resize(K);
      for (size_t i = 0; i < n; i++) std::memcpy(bucket_.data() + off[i], src[i], k[i] * 4);
      if (w.mpi && N > 1 && w.mpi->allreduce(bucket_.data(), K, ADEMAMIX_MPI_F32, ADEMAMIX_MPI_SUM, err, sizeof err)) return Fail(label_ + ": " + err);
      if (scale != 1.0f) for (auto& x : bucket_) x *= scale;
      for (size_t i = 0; i < n; i++) std::memcpy(dst[i], bucket_.data() + off[i], k[i] * 4);
    } else if (kind_ == Kind::kReduceScatter) {
      // block r holds every tensor's r-th slice; past a tensor's end the slice is zero
      bucket_.assign(K * N, 0.0f);
      for (int64_t r = 0; r < N; r++)
        for (size_t i = 0; i < n; i++) {
          const size_t lo = r * k[i], hi = std::min(in[i].count, lo + k[i]);
          if (lo < hi) std::memcpy(bucket_.data() + r * K + off[i], src[i] + lo, (hi - lo) * 4);
        }
      recv_.resize(K);
      if (w.mpi && N > 1) {
        if (w.mpi->reduce_scatter_block(bucket_.data(), recv_.data(), K, ADEMAMIX_MPI_F32, ADEMAMIX_MPI_SUM, err, sizeof err)) return Fail(label_ + ": " + err);
      } else std::memcpy(recv_.data(), bucket_.data(), K * 4);
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k[i]; j++) dst[i][j] = recv_[off[i] + j] * scale;
    } else {
      bucket_.resize(K);
      for (size_t i = 0; i < n; i++) std::memcpy(bucket_.data() + off[i], src[i], k[i] * 4);
      recv_.resize(K * N);
      if (w.mpi && N > 1) {
        if (w.mpi->allgather(bucket_.data(), recv_.data(), K, ADEMAMIX_MPI_F32, err, sizeof err)) return Fail(label_ + ": " + err);
      } else std::memcpy(recv_.data(), bucket_.data(), K * 4);
      for (size_t i = 0; i < n; i++) {
        const size_t total = static_cast<size_t>(sizes_[i]);
        for (int64_t r = 0; r < N; r++) {
          const size_t lo = r * k[i], hi = std::min(total, lo + k[i]);
          if (lo < hi) std::memcpy(dst[i] + lo, recv_.data() + r * K + off[i], (hi - lo) * 4);
        }
      }
    }
    if (cuda_) {
      for (size_t i = 0; i < n; i++) {
        void* p = nullptr;
        COLL_RETURN_IF(oapi->GetTensorMutableData(outs[i], &p));
        COLL_RETURN_IF(Copy(p, outStaged_[i].data(), outStaged_[i].size() * 4, 1, stream));
      }
      COLL_RETURN_IF(Sync(stream));  // the staging buffers are reused by the next run
    }
    return nullptr;
  }

 private:
  OrtStatus* Copy(void* dst, const void* src, size_t bytes, int kind, void* stream) {
#if defined(ADEMAMIX_WITH_CUDA)
    if (int rc = ademamix_collective_copy(dst, src, bytes, kind, stream)) return Fail(label_ + ": CUDA copy failed: " + ademamix_collective_error(rc));
    return nullptr;
#else
    (void)dst; (void)src; (void)bytes; (void)kind; (void)stream;
    return Fail(label_ + ": built without CUDA");
#endif
  }
  OrtStatus* Sync(void* stream) {
#if defined(ADEMAMIX_WITH_CUDA)
    if (int rc = ademamix_collective_sync(stream)) return Fail(label_ + ": CUDA stream sync failed: " + ademamix_collective_error(rc));
    return nullptr;
#else
    (void)stream;
    return Fail(label_ + ": built without CUDA");
#endif
  }

  Kind kind_;
  bool cuda_;
  std::string label_, reduction_;
  int64_t worldAttr_ = 1;
  std::vector<int64_t> sizes_;
  std::vector<float> bucket_, recv_;  // reused across runs: one allocation per node, not per step
  std::vector<std::vector<float>> staged_, outStaged_;
};

struct CollectiveOpDef : OrtCustomOp {
  Kind kind;
  bool cuda;
  CollectiveOpDef(Kind k, bool onCuda) : OrtCustomOp{}, kind(k), cuda(onCuda) {
    version = ORT_API_VERSION;
    GetName = [](const OrtCustomOp* op) { return KindName(static_cast<const CollectiveOpDef*>(op)->kind); };
    GetExecutionProviderType = [](const OrtCustomOp* op) -> const char* {
      return static_cast<const CollectiveOpDef*>(op)->cuda ? "CUDAExecutionProvider" : "CPUExecutionProvider";
    };
    GetInputType = [](const OrtCustomOp*, size_t) { return F32; };
    GetInputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
    GetOutputType = [](const OrtCustomOp*, size_t) { return F32; };
    GetOutputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
    GetInputCharacteristic = [](const OrtCustomOp*, size_t) { return INPUT_OUTPUT_VARIADIC; };
    GetOutputCharacteristic = [](const OrtCustomOp*, size_t) { return INPUT_OUTPUT_VARIADIC; };
    GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
    GetVariadicInputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicInputHomogeneity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputHomogeneity = [](const OrtCustomOp*) { return 1; };
    CreateKernel = nullptr;
    KernelCompute = nullptr;
    KernelDestroy = [](void* k) { delete static_cast<CollectiveKernel*>(k); };
    CreateKernelV2 = [](const OrtCustomOp* op, const OrtApi*, const OrtKernelInfo* info, void** kernel) -> OrtStatusPtr {
      auto* d = static_cast<const CollectiveOpDef*>(op);
      *kernel = new CollectiveKernel(d->kind, d->cuda, info);
      return nullptr;
    };
    KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatusPtr { return static_cast<CollectiveKernel*>(k)->Compute(ctx); };
    GetStartVersion = [](const OrtCustomOp*) { return 1; };
    GetEndVersion = [](const OrtCustomOp*) { return 1 << 30; };
  }
};

}  // namespace

OrtStatus* AddCollectiveOps(const OrtApi* api, OrtCustomOpDomain* domain) {
  oapi = api;
  static CollectiveOpDef ops[] = {
      {Kind::kAllReduce, false}, {Kind::kReduceScatter, false}, {Kind::kAllGather, false},
#if defined(ADEMAMIX_WITH_CUDA)
      {Kind::kAllReduce, true}, {Kind::kReduceScatter, true}, {Kind::kAllGather, true},
#endif
  };
  for (auto& op : ops) COLL_RETURN_IF(api->CustomOpDomain_Add(domain, &op));
  return nullptr;
}

}  // namespace ademamix
