// The C interface of libademamix_mpi.so, the one place that talks to MPI. The op library (collective ops) and the
// session addon (collectives outside the graph) both dlopen the same file and call through this table, so one MPI
// world serves the whole process. Built only where an MPI implementation is found (Open MPI on Debian).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum AdemamixMpiType { ADEMAMIX_MPI_F32 = 0, ADEMAMIX_MPI_F64 = 1, ADEMAMIX_MPI_BYTE = 2 };
enum AdemamixMpiOp { ADEMAMIX_MPI_SUM = 0, ADEMAMIX_MPI_MAX = 1, ADEMAMIX_MPI_MIN = 2 };

// Every call returns 0 on success, else writes a message (NUL-terminated, at most `errlen` bytes) and returns non-zero.
typedef struct AdemamixMpiApi {
  int version;  // ADEMAMIX_MPI_API_VERSION
  // MPI_Init_thread once per process (later calls only report); rank and size of MPI_COMM_WORLD
  int (*init)(int* rank, int* size, char* err, size_t errlen);
  // in place over `count` elements
  int (*allreduce)(void* buf, size_t count, int type, int op, char* err, size_t errlen);
  // send holds size blocks of `recvcount` elements (block r goes to rank r); recv gets this rank's reduced block
  int (*reduce_scatter_block)(const void* send, void* recv, size_t recvcount, int type, int op, char* err, size_t errlen);
  // recv gets size blocks of `count` elements, block r from rank r
  int (*allgather)(const void* send, void* recv, size_t count, int type, char* err, size_t errlen);
  int (*bcast)(void* buf, size_t count, int type, int root, char* err, size_t errlen);
  int (*barrier)(char* err, size_t errlen);
  // MPI_Abort(MPI_COMM_WORLD, code): ends every rank (mpirun reports it); does not return
  void (*abort)(int code);
  int (*finalize)(char* err, size_t errlen);
  // seconds spent inside collectives since init (wall clock, MPI_Wtime), for the communication share of a step
  double (*comm_seconds)(void);
} AdemamixMpiApi;

#define ADEMAMIX_MPI_API_VERSION 1
#define ADEMAMIX_MPI_LIBRARY "libademamix_mpi.so"

// The one exported symbol of libademamix_mpi.so
typedef const AdemamixMpiApi* (*AdemamixMpiGetApi)(void);
const AdemamixMpiApi* AdemamixMpiApiGet(void);

#ifdef __cplusplus
}
#endif
