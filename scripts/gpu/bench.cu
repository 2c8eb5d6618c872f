// GPU benchmark of the optimizer kernels on GPT-2 124M's parameter list (148 float32 tensors, 124,439,808 parameters):
// every optimizer with float32 and bf16 states, as one multi-tensor call (the AdEMAMixMulti op's launch) and as one
// call per tensor (the per-tensor ops), with separate outputs (what the session's double-buffered state gives) and in
// place. Times are CUDA events around the launches on one stream, median (and min) of --reps (default 50, at least 30)
// after warm-up. Beside them: a device-to-device copy moving the same number of bytes (read + write), the bandwidth
// reference. One JSON object per line on stdout. (scripts/gpu/bench_torch.py times torch.optim.AdamW(fused=True).)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <cuda_runtime.h>
#include "device.h"

using namespace ademamix;

namespace {

// GPT-2 124M (Hugging Face layout): wte, wpe, 12 × (ln_1 w/b, attn c_attn w/b, attn c_proj w/b, ln_2 w/b, mlp c_fc
// w/b, mlp c_proj w/b), ln_f w/b.
std::vector<size_t> Gpt2Sizes() {
  const size_t d = 768;
  std::vector<size_t> s = {50257 * d, 1024 * d};
  for (int l = 0; l < 12; l++) {
    const size_t layer[] = {d, d, d * 3 * d, 3 * d, d * d, d, d, d, d * 4 * d, 4 * d, 4 * d * d, d};
    s.insert(s.end(), std::begin(layer), std::end(layer));
  }
  s.push_back(d);
  s.push_back(d);
  return s;
}

enum Algo { kAdemamix, kSimplified, kAdamW };
const char* const kAlgoNames[] = {"AdEMAMix", "SimplifiedAdEMAMix", "AdamW"};
int States(Algo a) { return a == kAdemamix ? 3 : 2; }

struct Buffers {
  std::vector<void*> allocs;
  std::vector<ademamix_cuda_tensor> separate, inplace;
  ~Buffers() { for (void* p : allocs) dev::Free(p); }
};

// One allocation per stream (params, grads, each state, each output), tensors laid end to end at 256-byte-aligned
// offsets as a framework's allocator would place them.
void Allocate(Buffers* b, const std::vector<size_t>& sizes, int K, size_t stateBytes) {
  std::vector<size_t> off;
  size_t total = 0;
  for (size_t n : sizes) { off.push_back(total); total += (n + 127) / 128 * 128; }
  auto buf = [&](size_t elem) {
    void* p = dev::Alloc(total * elem);
    dev::Fill(p, 0, total * elem);
    b->allocs.push_back(p);
    return static_cast<char*>(p);
  };
  char* p = buf(4);
  char* g = buf(4);
  char* po = buf(4);
  char* s[kMaxStates] = {};
  char* so[kMaxStates] = {};
  for (int k = 0; k < K; k++) { s[k] = buf(stateBytes); so[k] = buf(stateBytes); }
  for (size_t i = 0; i < sizes.size(); i++) {
    ademamix_cuda_tensor t{};
    t.param = reinterpret_cast<float*>(p + off[i] * 4);
    t.grad = reinterpret_cast<float*>(g + off[i] * 4);
    t.param_out = reinterpret_cast<float*>(po + off[i] * 4);
    for (int k = 0; k < K; k++) {
      t.state[k] = s[k] + off[i] * stateBytes;
      t.state_out[k] = so[k] + off[i] * stateBytes;
    }
    t.n = static_cast<int64_t>(sizes[i]);
    b->separate.push_back(t);
    t.param_out = const_cast<float*>(t.param);
    for (int k = 0; k < K; k++) t.state_out[k] = const_cast<void*>(t.state[k]);
    b->inplace.push_back(t);
  }
}

int Step(Algo a, const ademamix_cuda_tensor* t, size_t count, bool bf16, float* s1, cudaStream_t st, int step) {
  switch (a) {
    case kAdemamix: {
      const AdemamixHyper h{0.9, 0.999, 1e-8, 0.1, 1e-3, 5.0, 0.9999, step};
      return ademamix_cuda_ademamix(&h, t, count, bf16, st);
    }
    case kSimplified: {
      const SimplifiedHyper h{0.999, 1e-8, 0.1, 1e-4, 5.0, 0.99, step, true, true, 1.5};
      return ademamix_cuda_simplified(&h, t, count, bf16, s1, 1.5f, st);
    }
    default: {
      const AdamWHyper h{0.9, 0.999, 1e-8, 0.1, 1e-3, step};
      return ademamix_cuda_adamw(&h, t, count, bf16, st);
    }
  }
}

struct Timing { double median, min; };

template <class Fn>
Timing Time(cudaStream_t st, int reps, Fn fn) {
  cudaEvent_t a, b;
  DEV_CHECK(cudaEventCreate(&a));
  DEV_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 5; i++) fn();  // warm-up (first-touch, clocks)
  DEV_CHECK(cudaStreamSynchronize(st));
  std::vector<double> ms;
  for (int i = 0; i < reps; i++) {
    DEV_CHECK(cudaEventRecord(a, st));
    fn();
    DEV_CHECK(cudaEventRecord(b, st));
    DEV_CHECK(cudaEventSynchronize(b));
    float t = 0;
    DEV_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  DEV_CHECK(cudaEventDestroy(a));
  DEV_CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front()};
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 50;
  for (int i = 1; i + 1 < argc; i++)
    if (!std::strcmp(argv[i], "--reps")) reps = std::max(30, std::atoi(argv[i + 1]));
  const std::vector<size_t> sizes = Gpt2Sizes();
  size_t params = 0;
  for (size_t n : sizes) params += n;
  if (sizes.size() != 148 || params != 124439808) {
    std::fprintf(stderr, "bench: the GPT-2 parameter list is wrong (%zu tensors, %zu parameters)\n", sizes.size(), params);
    return 1;
  }
  cudaStream_t st;
  DEV_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  float* s1 = static_cast<float*>(dev::Alloc(sizeof(float)));
  std::printf("{\"device\":\"%s\",\"tensors\":%zu,\"params\":%zu,\"reps\":%d}\n", dev::Name(), sizes.size(), params, reps);
  for (int bf = 0; bf < 2; bf++) {
    for (int ai = 0; ai < 3; ai++) {
      const Algo a = Algo(ai);
      const int K = States(a);
      const size_t stateBytes = bf ? 2 : 4;
      // traffic per parameter: read param, grad and K states, write param and K states
      const double bytes = double(params) * (3 * 4 + 2 * K * stateBytes);
      Buffers b;
      Allocate(&b, sizes, K, stateBytes);
      // the copy reference: the same bytes moved (half read, half written)
      const size_t half = static_cast<size_t>(bytes / 2);
      void* src = dev::Alloc(half);
      void* dst = dev::Alloc(half);
      const Timing copy = Time(st, reps, [&] { DEV_CHECK(cudaMemcpyAsync(dst, src, half, cudaMemcpyDeviceToDevice, st)); });
      dev::Free(src);
      dev::Free(dst);
      for (int inplace = 0; inplace < 2; inplace++) {
        const std::vector<ademamix_cuda_tensor>& list = inplace ? b.inplace : b.separate;
        for (int multi = 1; multi >= 0; multi--) {
          int step = 1;
          const Timing t = Time(st, reps, [&] {
            int err = 0;
            if (multi) err = Step(a, list.data(), list.size(), bf, s1, st, step);
            else
              for (size_t i = 0; i < list.size() && !err; i++) err = Step(a, &list[i], 1, bf, s1, st, step);
            if (err) { std::fprintf(stderr, "launch failed: %s\n", ademamix_cuda_error_string(err)); std::exit(2); }
            step++;
          });
          std::printf("{\"op\":\"%s\",\"states\":\"%s\",\"form\":\"%s\",\"outputs\":\"%s\",\"bytes_per_param\":%d,"
                      "\"ms_median\":%.4f,\"ms_min\":%.4f,\"gb_per_s\":%.1f,\"copy_ms_median\":%.4f,\"copy_gb_per_s\":%.1f,"
                      "\"fraction_of_copy\":%.3f}\n",
                      kAlgoNames[a], bf ? "bfloat16" : "float32", multi ? "multi-tensor" : "per-tensor",
                      inplace ? "in place" : "separate", int(bytes / params), t.median, t.min, bytes / t.median / 1e6,
                      copy.median, bytes / copy.median / 1e6, copy.median / t.median);
          std::fflush(stdout);
        }
      }
    }
  }
  dev::Free(s1);
  DEV_CHECK(cudaStreamDestroy(st));
  return 0;
}
