// libademamix_mpi.so: MPI (Open MPI) behind the small C table of include/ademamix/mpi_api.h. Loaded with dlopen
// (RTLD_GLOBAL: Open MPI's own plugins, dlopen'ed by libmpi, resolve libmpi's symbols from the global scope) by the op
// library's collective ops and by the session addon, so the op library itself never depends on MPI.
#include <mpi.h>
#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include "ademamix/mpi_api.h"

namespace {

std::mutex mu;  // collectives from the JS thread and ORT's worker thread never overlap: one at a time
double commSeconds = 0;
bool initialized = false;

int Err(char* err, size_t len, const std::string& what, int code) {
  char buf[MPI_MAX_ERROR_STRING] = {0};
  int n = 0;
  if (code != MPI_SUCCESS) MPI_Error_string(code, buf, &n);
  std::snprintf(err, len, "%s%s%s", what.c_str(), n ? ": " : "", buf);
  return 1;
}

MPI_Datatype TypeOf(int t) { return t == ADEMAMIX_MPI_F32 ? MPI_FLOAT : t == ADEMAMIX_MPI_F64 ? MPI_DOUBLE : MPI_BYTE; }
size_t SizeOf(int t) { return t == ADEMAMIX_MPI_F32 ? 4 : t == ADEMAMIX_MPI_F64 ? 8 : 1; }
MPI_Op OpOf(int op) { return op == ADEMAMIX_MPI_MAX ? MPI_MAX : op == ADEMAMIX_MPI_MIN ? MPI_MIN : MPI_SUM; }

int NeedInit(char* err, size_t len) {
  if (initialized) return 0;
  std::snprintf(err, len, "MPI is not initialized (call init first)");
  return 1;
}

// MPI counts are int: larger buffers go in chunks of at most 2^30 elements (each chunk is one collective call)
constexpr size_t kChunk = size_t(1) << 30;

struct Timer {
  double t0 = MPI_Wtime();
  ~Timer() { commSeconds += MPI_Wtime() - t0; }
};

int Init(int* rank, int* size, char* err, size_t len) {
  std::lock_guard<std::mutex> lock(mu);
  if (!initialized) {
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
      int provided = 0;
      int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
      if (rc != MPI_SUCCESS) return Err(err, len, "MPI_Init_thread failed", rc);
      if (provided < MPI_THREAD_SERIALIZED) {
        std::snprintf(err, len, "MPI provides thread level %d, below MPI_THREAD_SERIALIZED (the runner calls MPI from two threads, one at a time)", provided);
        return 1;
      }
    }
    // errors come back as codes (turned into messages) instead of aborting inside MPI
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    initialized = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  return 0;
}

int Allreduce(void* buf, size_t count, int type, int op, char* err, size_t len) {
  std::lock_guard<std::mutex> lock(mu);
  if (NeedInit(err, len)) return 1;
  Timer t;
  char* p = static_cast<char*>(buf);
  for (size_t at = 0; at < count; at += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, count - at));
    int rc = MPI_Allreduce(MPI_IN_PLACE, p + at * SizeOf(type), n, TypeOf(type), OpOf(op), MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return Err(err, len, "MPI_Allreduce of " + std::to_string(count) + " elements failed", rc);
  }
  return 0;
}

int ReduceScatterBlock(const void* send, void* recv, size_t recvcount, int type, int op, char* err, size_t len) {
  std::lock_guard<std::mutex> lock(mu);
  if (NeedInit(err, len)) return 1;
  if (recvcount > INT_MAX) { std::snprintf(err, len, "reduce-scatter block of %zu elements exceeds MPI's int count", recvcount); return 1; }
  Timer t;
  int rc = MPI_Reduce_scatter_block(send, recv, static_cast<int>(recvcount), TypeOf(type), OpOf(op), MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return Err(err, len, "MPI_Reduce_scatter_block of " + std::to_string(recvcount) + " elements per rank failed", rc);
  return 0;
}

int Allgather(const void* send, void* recv, size_t count, int type, char* err, size_t len) {
  std::lock_guard<std::mutex> lock(mu);
  if (NeedInit(err, len)) return 1;
  if (count > INT_MAX) { std::snprintf(err, len, "all-gather block of %zu elements exceeds MPI's int count", count); return 1; }
  Timer t;
  int rc = MPI_Allgather(send, static_cast<int>(count), TypeOf(type), recv, static_cast<int>(count), TypeOf(type), MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return Err(err, len, "MPI_Allgather of " + std::to_string(count) + " elements per rank failed", rc);
  return 0;
}

int Bcast(void* buf, size_t count, int type, int root, char* err, size_t len) {
  std::lock_guard<std::mutex> lock(mu);
  if (NeedInit(err, len)) return 1;
  Timer t;
  char* p = static_cast<char*>(buf);
  for (size_t at = 0; at < count; at += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, count - at));
    int rc = MPI_Bcast(p + at * SizeOf(type), n, TypeOf(type), root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return Err(err, len, "MPI_Bcast failed", rc);
  }
  return 0;
}

int Barrier(char* err, size_t len) {
  std::lock_guard<std::mutex> lock(mu);
  if (NeedInit(err, len)) return 1;
  Timer t;
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : Err(err, len, "MPI_Barrier failed", rc);
}

void Abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int Finalize(char* err, size_t len) {
  std::lock_guard<std::mutex> lock(mu);
  int done = 0;
  MPI_Finalized(&done);
  if (!initialized || done) return 0;
  int rc = MPI_Finalize();
  return rc == MPI_SUCCESS ? 0 : Err(err, len, "MPI_Finalize failed", rc);
}

double CommSeconds() { return commSeconds; }

const AdemamixMpiApi kApi = {ADEMAMIX_MPI_API_VERSION, Init, Allreduce, ReduceScatterBlock, Allgather, Bcast, Barrier,
                             Abort, Finalize, CommSeconds};

}  // namespace

extern "C" __attribute__((visibility("default"))) const AdemamixMpiApi* AdemamixMpiApiGet(void) { return &kApi; }
