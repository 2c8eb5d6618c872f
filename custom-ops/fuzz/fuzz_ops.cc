// libFuzzer target for the com.ademamix op library: each input decodes to a one-node ONNX model calling one op of the
// library with fuzzed list length, input/output counts, element types, shapes, attributes and data, which the real
// ONNX Runtime (libonnxruntime.so.1, dlopen-ed, not instrumented) loads and runs. The op library (ops.cc,
// cpu_kernels.cc) is compiled into this binary with the sanitizers and coverage, and registered in process through its
// RegisterCustomOps entry point. An error status from ORT (session creation or run) is an accepted outcome; a crash,
// sanitizer report, hang or huge allocation is a finding.
//
// Input layout: a fixed header (kHeader bytes, offsets below) then one flag byte per node input. A byte that is 0 (or
// absent: short inputs read as zeros) means "as the schema wants it", so a header holding just the op index is a
// valid call, and each non-zero byte is one deviation from it. FUZZ_OPS_WRITE_SEEDS=<dir> writes such valid calls
// (the seed corpus) and exits; FUZZ_OPS_STATS=1 prints per-op outcome counts at exit.
#include <dlfcn.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ademamix/schemas.gen.h"
#include "onnxruntime_c_api.h"

extern "C" OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* base);

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Protobuf wire format, only what ModelProto needs here: varints, length-delimited fields, fixed32 floats.
struct Pb {
  std::string b;
  void Varint(uint64_t v) {
    while (v >= 0x80) { b.push_back(static_cast<char>(v | 0x80)); v >>= 7; }
    b.push_back(static_cast<char>(v));
  }
  void Tag(int field, int wire) { Varint(static_cast<uint64_t>(field) << 3 | wire); }
  void Int(int field, int64_t v) { Tag(field, 0); Varint(static_cast<uint64_t>(v)); }  // int64/int32/enum
  void Bytes(int field, const std::string& s) { Tag(field, 2); Varint(s.size()); b += s; }
  void Msg(int field, const Pb& m) { Bytes(field, m.b); }
  void Float(int field, float f) {
    Tag(field, 5);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) b.push_back(static_cast<char>(u >> (8 * i)));
  }
};

// onnx.proto field numbers
namespace onnx {
enum { kModelIr = 1, kModelGraph = 7, kModelOpset = 8 };
enum { kOpsetDomain = 1, kOpsetVersion = 2 };
enum { kGraphNode = 1, kGraphName = 2, kGraphInput = 11, kGraphOutput = 12 };
enum { kNodeIn = 1, kNodeOut = 2, kNodeName = 3, kNodeOp = 4, kNodeAttr = 5, kNodeDomain = 7 };
enum { kAttrName = 1, kAttrF = 2, kAttrI = 3, kAttrS = 4, kAttrFloats = 7, kAttrType = 20 };
enum { kAttrFLOAT = 1, kAttrINT = 2, kAttrSTRING = 3, kAttrFLOATS = 6 };
enum { kVIName = 1, kVIType = 2, kTypeTensor = 1, kTensorElem = 1, kTensorShape = 2, kShapeDim = 1, kDimValue = 1,
       kDimParam = 2 };
}  // namespace onnx

// ONNX element types (TensorProto.DataType = ONNXTensorElementDataType)
constexpr int F32 = 1, U8 = 2, I32 = 6, I64 = 7, F16 = 10, F64 = 11, BF16 = 16;

size_t ElemSize(int t) {
  switch (t) {
    case U8: return 1;
    case F16: case BF16: return 2;
    case F32: case I32: return 4;
    default: return 8;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The ops, as the fuzzer sees them: the library's rows (ops.cc) described from the generated schema.
struct OpInfo {
  std::string name;
  const ademamix::schema::Op* sch;  // null: BenchCopy or a fused backward op
  bool multi, bf16;
  // the fused backward ops (nn_ops.cc): their float32 inputs and outputs, and their one attribute (null: none)
  int nnIn = 0, nnOut = 0;
  const char* nnAttr = nullptr;
  bool nnAttrInt = true;
  unsigned nnI64 = 0;  // bit j: input j is int64 (the losses' targets), else float32
};

std::vector<OpInfo> MakeOps() {
  using ademamix::schema::kOps;
  std::vector<OpInfo> ops;
  for (int a = 0; a < 3; a++)  // the three original algorithms: per-tensor / multi, float32 / bf16 states
    for (int m = 0; m < 2; m++)
      for (int b = 0; b < 2; b++)
        ops.push_back({std::string(kOps[a].name) + (m ? "Multi" : "") + (b ? "Bf16" : ""), &kOps[a], m == 1, b == 1});
  for (const auto& o : kOps)
    if (o.generic) ops.push_back({o.name, &o, true, false});
  ops.push_back({"BenchCopy", nullptr, true, false});
  // after the others, so the kept inputs (the op byte modulo the count) still pick the ops they were found on
  ops.push_back({"GeluGrad", nullptr, false, false, 2, 1, "approximate", false});
  ops.push_back({"SoftmaxGrad", nullptr, false, false, 2, 1, "axis", true});
  ops.push_back({"LayerNormalizationGrad", nullptr, false, false, 6, 3, "axis", true});  // (dR, input 5, optional)
  ops.push_back({"WeightGrad", nullptr, false, false, 2, 2, nullptr, true});
  ops.push_back({"SelfAttention", nullptr, false, false, 1, 2, "heads", true});
  ops.push_back({"SelfAttentionGrad", nullptr, false, false, 4, 1, "heads", true});
  ops.push_back({"Linear", nullptr, false, false, 4, 1, nullptr, true});
  ops.push_back({"LayerNormalization", nullptr, false, false, 3, 3, "axis", true});
  ops.push_back({"SumSquares", nullptr, false, false, 3, 1, nullptr, true});  // (variadic: three inputs of any shapes)
  ops.push_back({"Gelu", nullptr, false, false, 1, 1, "approximate", false});
  ops.push_back({"SoftmaxCrossEntropyLoss", nullptr, false, false, 2, 2, "reduction", false, 0b10});
  ops.push_back({"SoftmaxCrossEntropyLossGrad", nullptr, false, false, 3, 1, "reduction", false, 0b100});
  return ops;
}
const std::vector<OpInfo>& Ops() {
  static const std::vector<OpInfo> ops = MakeOps();
  return ops;
}

// ---------------------------------------------------------------------------------------------------------------
// The header: byte offsets.
enum {
  kOp = 0, kListLen, kInDelta, kOutDelta, kOmitIn, kOmitOut, kThroughNeg, kOutDecl, kFill, kSeed0, kSeed1, kExtraAttr,
  kAlias,                                      // non-zero: one node input reuses the previous input's value
  kThreads,                                    // odd: the session with 2 intra-op threads
  kAttrs,                                      // one byte per schema attribute (kMaxAttrs)
  kScalarBytes = kAttrs + 5,                    // 3 bytes (type, shape, value) per scalar slot: step, 3 scalars, s1
  kShapes = kScalarBytes + 3 * 5,               // 4 bytes (rank, 3 dims) per list entry's param shape (4 specs)
  kHeader = kShapes + 4 * 4,
};
static_assert(ademamix::schema::kMaxAttrs <= 5 && ademamix::schema::kMaxScalars <= 3, "header sized for the schema");

struct Bytes {
  const uint8_t* p;
  size_t n;
  uint8_t at(size_t i) const { return i < n ? p[i] : 0; }
};

// Deterministic fill from the header's seed.
struct Rng {
  uint64_t s;
  uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
  float unit() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f; }
};

const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();
// attribute and scalar values worth trying; entry 0 stands for "the usual value" (a scalar's default, 0.25 for a
// float attribute, 0 for an int one)
const float kFloatVals[] = {0, 0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 0.9f, 0.999f, 1.5f, 2.0f, 1e-8f, 1e30f, -1e30f,
                            kNaN, kInf, -kInf, 1e-45f, 3.4e38f, 0.9999f, 1e-3f};
const int64_t kIntVals[] = {0, 0, 1, -1, 2, 1000000, std::numeric_limits<int64_t>::max(),
                            std::numeric_limits<int64_t>::min(), (int64_t(1) << 53) + 1, 10};

// One tensor handed to the node: a graph input (maybe through Neg), with its data.
struct Feed {
  std::string name;  // graph input name
  int type;
  std::vector<int64_t> dims;
  int decl = 0;  // 0: exact dims, 1: symbolic dims, 2: no shape
  std::vector<uint8_t> data;
};

// What one input decodes to.
struct Case {
  const OpInfo* op = nullptr;
  std::string model;
  std::vector<Feed> feeds;
  std::vector<std::string> outputs;  // graph outputs to fetch
  bool threads2 = false;
  bool rawBits = false;  // data of random bits: may hold the fill pattern that marks unwritten outputs
};

enum Kind { kParam, kGrad, kState, kStep, kScalar, kS1, kCopy };
struct Slot {
  Kind kind;
  int type;             // expected element type
  int list = 0;         // list entry (multi) or 0
  int scalar = 0;       // scalar slot index in the header: 0 step, 1..3 scalars, 4 s1
  bool optional = false;
};

std::vector<int64_t> ParamDims(const Bytes& in, int entry) {
  const size_t o = kShapes + 4 * (entry % 4);
  const uint8_t r = in.at(o);
  const int rank = (r % 4 == 0) ? 1 : (r % 4 == 1) ? 2 : (r % 4 == 2) ? 0 : 3;
  std::vector<int64_t> d;
  int64_t total = 1;
  for (int i = 0; i < rank; i++) {
    const uint8_t c = in.at(o + 1 + i);
    // 0 → 4, 1 → 0 (empty), 2..199 → 1..198, 200..255 → 700..39200 (past the kernels' 16K streaming and 32K chunk
    // boundaries), bounded to 2^17 elements in all
    int64_t v = c == 0 ? 4 : c < 200 ? c - 1 : int64_t(c - 199) * 700;
    if (total * v > (int64_t(1) << 17)) v = 1;
    total *= v;
    d.push_back(v);
  }
  return d;
}

// A grad or state shape: its param's, or one of a few wrong ones.
std::vector<int64_t> Perturb(std::vector<int64_t> d, int how) {
  switch (how) {
    case 0: break;
    case 1: if (d.empty()) d.push_back(2); else d.back() += 1; break;
    case 2: d.push_back(1); break;
    case 3: d = {0}; break;
    case 4: d.clear(); break;
    case 5: { std::vector<int64_t> r(d.rbegin(), d.rend()); d = r; break; }
    case 6: { int64_t n = 1; for (int64_t x : d) n *= x; d = {n}; break; }
    case 7: if (!d.empty()) d.erase(d.begin()); break;
  }
  return d;
}

void FillData(Feed* f, int mode, Rng* rng, double value, bool isScalar) {
  int64_t n = 1;
  for (int64_t x : f->dims) n *= x;
  f->data.assign(static_cast<size_t>(n) * ElemSize(f->type), 0);
  for (int64_t i = 0; i < n; i++) {
    float v = isScalar ? static_cast<float>(value) : rng->unit();
    if (!isScalar) {
      switch (mode % 8) {
        case 1: if (i % 7 == 3) v = kNaN; break;
        case 2: if (i % 5 == 1) v = (i & 2) ? kInf : -kInf; break;
        case 3: v *= 1e-39f; break;  // denormals
        case 4: v = 0; break;
        case 5: v *= 3e38f; break;
        case 6: { uint32_t u = static_cast<uint32_t>(rng->next()); std::memcpy(&v, &u, 4); break; }  // any bits
        case 7: v = std::fabs(v) * 1e-30f; break;
      }
    }
    uint8_t* p = f->data.data() + i * ElemSize(f->type);
    switch (f->type) {
      case F32: std::memcpy(p, &v, 4); break;
      case F64: { double d = isScalar ? value : v; std::memcpy(p, &d, 8); break; }
      case BF16: { uint32_t u; std::memcpy(&u, &v, 4); uint16_t h = static_cast<uint16_t>(u >> 16); std::memcpy(p, &h, 2); break; }
      case I64: {
        int64_t x = 0;
        if (isScalar) x = (value >= 9.2e18) ? std::numeric_limits<int64_t>::max()
                        : (value <= -9.2e18) ? std::numeric_limits<int64_t>::min()
                        : (value == value) ? static_cast<int64_t>(value) : 0;
        else x = static_cast<int64_t>(rng->next() % 7) - 3;
        std::memcpy(p, &x, 8);
        break;
      }
      default: { uint64_t r = rng->next(); std::memcpy(p, &r, ElemSize(f->type)); break; }
    }
  }
}

void TypeProto(Pb* vi, int type, const std::vector<int64_t>* dims, int decl, const std::string& sym) {
  Pb tensor, tp;
  tensor.Int(onnx::kTensorElem, type);
  if (dims && decl != 2) {
    Pb shape;
    for (size_t i = 0; i < dims->size(); i++) {
      Pb dim;
      if (decl == 1) dim.Bytes(onnx::kDimParam, sym + "_" + std::to_string(i));
      else dim.Int(onnx::kDimValue, (*dims)[i]);
      shape.Msg(onnx::kShapeDim, dim);
    }
    tensor.Msg(onnx::kTensorShape, shape);
  }
  tp.Msg(onnx::kTypeTensor, tensor);
  vi->Msg(onnx::kVIType, tp);
}

// Decodes one fuzz input into a model and its feeds.
Case Decode(const Bytes& in) {
  const auto& ops = Ops();
  Case c;
  c.op = &ops[in.at(kOp) % ops.size()];
  c.threads2 = in.at(kThreads) & 1;
  const OpInfo& op = *c.op;
  const auto* sch = op.sch;
  Rng rng{0x9E3779B97F4A7C15ull ^ (uint64_t(in.at(kSeed0)) << 8 | in.at(kSeed1))};
  const uint8_t lb = in.at(kListLen);
  const int N = op.multi ? (lb >= 250 ? 16 : 1 + lb % 4) : 1;

  // attributes
  Pb node;
  double attr[5] = {};
  int nAttrs = sch ? sch->n_attrs : op.nnIn ? (op.nnAttr ? 1 : 0) : 1;
  for (int k = 0; k < nAttrs; k++) {
    const char* name = sch ? sch->attrs[k].name : op.nnIn ? op.nnAttr : "stream";
    const bool isInt = sch ? sch->attrs[k].is_int : op.nnIn ? op.nnAttrInt : true;
    attr[k] = sch ? sch->attrs[k].dflt : 1;
    const uint8_t b = in.at(kAttrs + k);
    if (!b) continue;
    const int form = b % 4, idx = b / 4;
    Pb a;
    a.Bytes(onnx::kAttrName, name);
    // the natural form first (float for float attributes, int for int ones), then the other number form, a string
    // and a float list: the kernel reads only the first two
    const int kind = isInt ? (form == 0 ? 1 : form == 1 ? 0 : form) : form;
    if (kind == 0) {
      const float v = idx % 20 ? kFloatVals[idx % 20] : 0.25f;
      a.Int(onnx::kAttrType, onnx::kAttrFLOAT); a.Float(onnx::kAttrF, v); attr[k] = v;
    } else if (kind == 1) {
      const int64_t v = kIntVals[idx % 10];
      a.Int(onnx::kAttrType, onnx::kAttrINT); a.Int(onnx::kAttrI, v); attr[k] = static_cast<double>(v);
    } else if (kind == 2) {
      // GeluGrad's approximate: its two values and a wrong one (the losses' reduction: their three)
      const bool red = op.nnAttr && std::strcmp(op.nnAttr, "reduction") == 0;  // the losses': their three and a wrong one
      const char* text = op.nnIn && !isInt ? (red ? (idx % 4 == 0 ? "mean" : idx % 4 == 1 ? "sum" : idx % 4 == 2 ? "none" : "0.5")
                                                  : idx % 3 == 0 ? "tanh" : idx % 3 == 1 ? "none" : "0.5") : "0.5";
      a.Int(onnx::kAttrType, onnx::kAttrSTRING); a.Bytes(onnx::kAttrS, text);
    } else {
      a.Int(onnx::kAttrType, onnx::kAttrFLOATS); a.Float(onnx::kAttrFloats, 0.5f); a.Float(onnx::kAttrFloats, 0.5f);
    }
    node.Msg(onnx::kNodeAttr, a);
  }
  if (in.at(kExtraAttr) & 1) {  // an attribute the schema does not have
    Pb a;
    a.Bytes(onnx::kAttrName, "unknown_attr");
    a.Int(onnx::kAttrType, onnx::kAttrINT); a.Int(onnx::kAttrI, 7);
    node.Msg(onnx::kNodeAttr, a);
  }

  // the formal inputs and outputs, as the schema wants them
  std::vector<Slot> ins;
  std::vector<int> outTypes;
  if (op.nnIn) {
    // input j takes shape spec min(j, 3), or spec 0 when bit j of the list byte says so (shapes that agree, or not;
    // LayerNormalizationGrad's Mean and InvStdDev share spec 3)
    for (int j = 0; j < op.nnIn; j++) ins.push_back({kCopy, (op.nnI64 >> j) & 1 ? I64 : F32, (lb >> j) & 1 ? 0 : j < 3 ? j : 3});
    for (int j = 0; j < op.nnOut; j++) outTypes.push_back(F32);
  } else if (!sch) {
    for (int i = 0; i < N; i++) { ins.push_back({kCopy, F32, i}); outTypes.push_back(F32); }
  } else {
    const int st = op.bf16 ? BF16 : F32;
    int K = sch->n_states;
    const bool dropped = sch->drop_state >= 0 && attr[0] == 0.0;  // AdEMAMix: beta1 is attribute 0
    if (!op.multi) {
      ins.push_back({kParam, F32}); ins.push_back({kGrad, F32});
      for (int k = 0; k < K; k++) ins.push_back({kState, st, 0, 0, k == sch->drop_state});
      ins.push_back({kStep, I64, 0, 0});
      for (int k = 0; k < sch->n_scalars; k++) ins.push_back({kScalar, F32, 0, 1 + k});
      for (int k = 0; k < sch->n_globals; k++) ins.push_back({kS1, F32, 0, 4, true});
      outTypes.push_back(F32);
      for (int k = 0; k < K; k++) outTypes.push_back(st);
      for (int k = 0; k < sch->n_globals; k++) outTypes.push_back(F32);
    } else {
      if (dropped) K--;
      ins.push_back({kStep, I64, 0, 0});
      for (int k = 0; k < sch->n_scalars; k++) ins.push_back({kScalar, F32, 0, 1 + k});
      for (int k = 0; k < sch->n_globals; k++) { ins.push_back({kS1, F32, 0, 4, true}); outTypes.push_back(F32); }
      for (int i = 0; i < N; i++) ins.push_back({kParam, F32, i});
      for (int i = 0; i < N; i++) ins.push_back({kGrad, F32, i});
      for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) ins.push_back({kState, st, i});
      for (int k = 0; k <= K; k++)
        for (int i = 0; i < N; i++) outTypes.push_back(k ? st : F32);
    }
  }
  // too few / too many inputs and outputs
  const int deltas[] = {0, -1, 1, -2, 2, -3, 3, -5};
  const int din = deltas[in.at(kInDelta) % 8], dout = deltas[in.at(kOutDelta) % 8];
  if (din < 0) ins.resize(ins.size() > size_t(-din) ? ins.size() + din : 0);
  for (int i = 0; i < din; i++) ins.push_back({kParam, F32, 0});
  if (dout < 0) outTypes.resize(outTypes.size() > size_t(-dout) ? outTypes.size() + dout : 1);
  for (int i = 0; i < dout; i++) outTypes.push_back(F32);

  // node inputs and graph inputs
  Pb graph;
  // tensors in and out through Neg (float32) or Identity: ORT hands an op an input's buffer as an output
  // (may-inplace) only when the input is an intermediate and the output is not a graph output
  const bool neg = in.at(kThroughNeg) & 1;
  const int fill = in.at(kFill);
  c.rawBits = fill % 8 == 6;
  const uint8_t omitIn = in.at(kOmitIn), omitOut = in.at(kOmitOut);
  std::vector<std::string> nodeIns;
  for (size_t j = 0; j < ins.size(); j++) {
    const Slot& s = ins[j];
    const uint8_t flags = in.at(kHeader + j);
    std::string name = "in" + std::to_string(j);
    // an omitted input: the chosen one, or an optional one when that byte's top bit asks
    if ((omitIn && (omitIn - 1) % ins.size() == j) || (s.optional && (flags & 0x80))) { nodeIns.push_back(""); continue; }
    Feed f;
    f.name = name;
    f.type = s.type;
    const bool scalar = s.kind == kStep || s.kind == kScalar || s.kind == kS1;
    double value = 0;
    if (scalar) {
      const size_t o = kScalarBytes + 3 * s.scalar;
      const uint8_t tb = in.at(o), sb = in.at(o + 1), vb = in.at(o + 2);
      const int types[] = {s.type, F64, I64, F32, F16, I32, BF16, U8};
      f.type = types[tb % 8];
      const std::vector<int64_t> shapes[] = {{}, {1}, {2}, {0}, {1, 1}, {3, 1}};
      f.dims = shapes[sb % 6];
      if (s.kind == kStep) value = vb ? static_cast<double>(kIntVals[vb % 10]) : 1.0;
      else if (vb == 0) value = s.kind == kS1 ? 0.0 : s.scalar == 1 ? 1e-3 : s.scalar == 2 ? 5.0 : 0.9;
      else value = kFloatVals[vb % 20];
      if (s.kind == kStep && (vb / 10) % 2) value = kFloatVals[vb % 20];  // step as a float value (NaN, inf, …)
      f.decl = (sb / 6) % 3;
    } else {
      const int types[] = {s.type, F32, BF16, F64, F16, I64, I32, s.type};
      f.type = types[flags & 7];
      f.dims = ParamDims(in, s.list);
      if (s.kind != kParam && s.kind != kCopy) f.dims = Perturb(f.dims, (flags >> 3) & 7);
      f.decl = (flags >> 6) & 1;
    }
    FillData(&f, fill, &rng, value, scalar);
    Pb vi;
    vi.Bytes(onnx::kVIName, name);
    TypeProto(&vi, f.type, &f.dims, f.decl, name);
    graph.Msg(onnx::kGraphInput, vi);
    if (neg && !scalar) {  // Identity for the other types (bf16 states: so the bf16 ops can run fully in place)
      Pb n;
      n.Bytes(onnx::kNodeIn, name);
      n.Bytes(onnx::kNodeOut, name + "_neg");
      n.Bytes(onnx::kNodeOp, f.type == F32 ? "Neg" : "Identity");
      graph.Msg(onnx::kGraphNode, n);
      name += "_neg";
    }
    nodeIns.push_back(name);
    c.feeds.push_back(std::move(f));
  }
  // one value feeding two inputs (param and grad, say): ORT must not hand it to the op as an in-place output
  if (const uint8_t a = in.at(kAlias); a && nodeIns.size() > 1) {
    const size_t j = 1 + (a - 1) % (nodeIns.size() - 1);
    if (!nodeIns[j - 1].empty()) nodeIns[j] = nodeIns[j - 1];
  }
  for (const std::string& s : nodeIns) node.Bytes(onnx::kNodeIn, s);
  const std::vector<int64_t> outDims = ParamDims(in, 0);
  const int outDecl = in.at(kOutDecl) % 4;
  for (size_t j = 0; j < outTypes.size(); j++) {
    if (omitOut && (omitOut - 1) % outTypes.size() == j) { node.Bytes(onnx::kNodeOut, ""); continue; }
    std::string name = "out" + std::to_string(j);
    node.Bytes(onnx::kNodeOut, name);
    if (neg) {
      Pb n;
      n.Bytes(onnx::kNodeIn, name);
      name += "_after";
      n.Bytes(onnx::kNodeOut, name);
      n.Bytes(onnx::kNodeOp, outTypes[j] == F32 ? "Neg" : "Identity");
      graph.Msg(onnx::kGraphNode, n);
    }
    Pb vi;
    vi.Bytes(onnx::kVIName, name);
    // 0: type only; 1: type and param 0's shape; 2: float32 whatever the op makes; 3: float64 (wrong)
    TypeProto(&vi, outDecl == 2 ? F32 : outDecl == 3 ? F64 : outTypes[j], outDecl == 1 ? &outDims : nullptr, 0, name);
    graph.Msg(onnx::kGraphOutput, vi);
    c.outputs.push_back(name);
  }
  node.Bytes(onnx::kNodeName, "fuzz_node");
  node.Bytes(onnx::kNodeOp, op.name);
  node.Bytes(onnx::kNodeDomain, "com.ademamix");
  graph.Msg(onnx::kGraphNode, node);
  graph.Bytes(onnx::kGraphName, "fuzz");

  Pb model, onnxOpset, ours;
  model.Int(onnx::kModelIr, 9);
  onnxOpset.Bytes(onnx::kOpsetDomain, ""); onnxOpset.Int(onnx::kOpsetVersion, 19);
  ours.Bytes(onnx::kOpsetDomain, "com.ademamix"); ours.Int(onnx::kOpsetVersion, 1);
  model.Msg(onnx::kModelOpset, onnxOpset);
  model.Msg(onnx::kModelOpset, ours);
  model.Msg(onnx::kModelGraph, graph);
  c.model = std::move(model.b);
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// The runtime, set up once.
const OrtApi* ort = nullptr;
OrtEnv* env = nullptr;
OrtSessionOptions* opts[2] = {};  // 1 and 2 intra-op threads
OrtMemoryInfo* cpu = nullptr;

void Check(OrtStatus* st, const char* what) {
  if (!st) return;
  std::fprintf(stderr, "fuzz_ops: %s: %s\n", what, ort->GetErrorMessage(st));
  std::exit(2);
}

// Per-op outcomes: how far each call got (the evidence that the fuzzer reaches every op's Compute).
struct Stats { uint64_t execs = 0, sessionErr = 0, runOk = 0, kernelErr = 0, otherRunErr = 0; };
double sessionSeconds = 0, runSeconds = 0;
double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
std::vector<Stats> stats;
bool printStats = false;

void PrintStats() {
  if (!printStats) return;
  std::fprintf(stderr, "fuzz_ops: per-op outcomes (execs / session error / run ok / kernel error / other run error)\n");
  const auto& ops = Ops();
  for (size_t i = 0; i < ops.size(); i++)
    std::fprintf(stderr, "  %-28s %7llu %7llu %7llu %7llu %7llu\n", ops[i].name.c_str(), (unsigned long long)stats[i].execs,
                 (unsigned long long)stats[i].sessionErr, (unsigned long long)stats[i].runOk,
                 (unsigned long long)stats[i].kernelErr, (unsigned long long)stats[i].otherRunErr);
  std::fprintf(stderr, "fuzz_ops: %.1f s in session creation, %.1f s in feeds and runs\n", sessionSeconds, runSeconds);
  // a run that never gets an op into its kernel cannot find anything there: fail it (scripts/fuzz-native.sh)
  if (std::getenv("FUZZ_OPS_REQUIRE_REACH")) {
    bool all = true;
    for (size_t i = 0; i < ops.size(); i++)
      if (stats[i].runOk + stats[i].kernelErr == 0) {
        std::fprintf(stderr, "fuzz_ops: %s never reached its kernel\n", ops[i].name.c_str());
        all = false;
      }
    if (!all) std::_Exit(3);
  }
}

// The process's end: the stats, then out without running the static destructors. ORT starts a thread it never joins
// (it waits on a timed condition variable; ReleaseEnv does not stop it) that reads ORT's static data, so destroying
// that data at exit while the thread runs is a use-after-free, which ASan reported once at the end of a 30 s run
// (CI, 2026-12-04). on_exit, not atexit: the handler gets the status to leave with. Registered after ORT was loaded,
// so it runs before ORT's destructors.
void AtExit(int status, void*) {
  PrintStats();
  std::fflush(nullptr);
  std::_Exit(status);
}

// scripts/fuzz-native.sh has ASan fill every new allocation with 0xFF bytes (malloc_fill_byte): an output element
// still holding that NaN pattern (0xFFFFFFFF, or 0x7FFFFFFF after the Neg the outputs may pass through; 0xFFFF for
// bf16) after a successful run was never written by the op. Arithmetic does not make these payloads from ordinary
// inputs, so it is a finding: abort, and libFuzzer keeps the input.
void CheckWritten(const Case& c, const std::vector<const char*>& names, const std::vector<OrtValue*>& outs) {
  if (!std::getenv("FUZZ_OPS_CHECK_WRITTEN")) return;
  auto ok = [](OrtStatus* st) { if (st) ort->ReleaseStatus(st); return !st; };  // a failed query is not the op's fault
  for (size_t i = 0; i < outs.size(); i++) {
    OrtTensorTypeAndShapeInfo* info = nullptr;
    if (!outs[i] || !ok(ort->GetTensorTypeAndShape(outs[i], &info))) continue;
    size_t n = 0;
    ONNXTensorElementDataType t = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    const bool known = ok(ort->GetTensorShapeElementCount(info, &n)) && ok(ort->GetTensorElementType(info, &t));
    ort->ReleaseTensorTypeAndShapeInfo(info);
    void* p = nullptr;
    if (!known || n == 0 || !ok(ort->GetTensorMutableData(outs[i], &p)) || !p) continue;
    for (size_t k = 0; k < n; k++) {
      bool unwritten = false;
      if (t == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        uint32_t u;
        std::memcpy(&u, static_cast<const char*>(p) + 4 * k, 4);
        unwritten = u == 0xFFFFFFFFu || u == 0x7FFFFFFFu;
      } else if (t == ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16) {
        uint16_t h;
        std::memcpy(&h, static_cast<const char*>(p) + 2 * k, 2);
        unwritten = h == 0xFFFFu;
      }
      if (unwritten) {
        std::fprintf(stderr, "fuzz_ops: %s ran but left output '%s' element %zu of %zu unwritten\n", c.op->name.c_str(),
                     names[i], k, n);
        std::abort();
      }
    }
  }
}

std::string OrtLibPath() {
  if (const char* p = std::getenv("ADEMAMIX_ORT_LIB")) return p;
#ifdef ADEMAMIX_ORT_LIB_DEFAULT
  return ADEMAMIX_ORT_LIB_DEFAULT;
#else
  return "libonnxruntime.so.1";
#endif
}

// Valid calls of every op, written as seed files: the header with the op and a few structural variations.
void WriteSeeds(const char* dir) {
  mkdir(dir, 0755);
  const auto& ops = Ops();
  int count = 0;
  for (size_t i = 0; i < ops.size(); i++) {
    struct Variant { int len; uint8_t shape[4]; bool neg; uint8_t beta1; bool threads2; };
    const Variant vs[] = {
        {1, {0, 0, 0, 0}, false, 0, false},    // [4]
        {2, {1, 3, 5, 0}, true, 0, false},     // [2,4], through Neg (in place where the op allows)
        {3, {0, 230, 0, 0}, false, 0, false},  // [21700]: the streaming (blocked) path
        {1, {1, 3, 230, 0}, true, 0, true},    // [2,21700] on 2 threads: two chunks, in place
        {1, {2, 0, 0, 0}, false, 0, false},    // a scalar param
        {1, {0, 0, 0, 0}, false, 1, false},    // beta1 = 0 as a float (AdEMAMix drops m1)
    };
    // the attention ops: heads = 2 (kIntVals[4]) over QKV [2, 5, 12] (spec 1; SelfAttention's one input takes spec 0)
    // with dY and Y [2, 5, 4] (spec 0, list-byte bits 0 and 2) and LSE [2, 2, 5] (spec 3); once more on 2 threads
    if (ops[i].nnAttr && std::strcmp(ops[i].nnAttr, "heads") == 0) {
      for (int t = 0; t < 2; t++) {
        std::vector<uint8_t> b(kHeader, 0);
        const bool fwd = ops[i].nnIn == 1;
        const uint8_t qkv[4] = {3, 3, 6, 13}, y[4] = {3, 3, 6, 5}, lse[4] = {3, 3, 3, 6};
        b[kOp] = static_cast<uint8_t>(i);
        b[kListLen] = fwd ? 0 : 5;
        b[kThreads] = static_cast<uint8_t>(t);
        b[kSeed0] = static_cast<uint8_t>(count);
        b[kAttrs] = 16;
        std::memcpy(&b[kShapes], fwd ? qkv : y, 4);
        std::memcpy(&b[kShapes + 4], qkv, 4);
        std::memcpy(&b[kShapes + 12], lse, 4);
        const std::string path = std::string(dir) + "/seed-" + ops[i].name + "-" + std::to_string(count++);
        if (FILE* f = std::fopen(path.c_str(), "wb")) { std::fwrite(b.data(), 1, b.size(), f); std::fclose(f); }
      }
      continue;
    }
    // Linear: X [2, 13, 20] · W [20, 37] + B [37] + R [2, 13, 37] (specs 0–3), and X [2, 30, 40] · W [40, 70] + B [70]
    // + R [2, 30, 70] on 2 threads
    // LayerNormalization: X [2, 13, 20] with Scale and B [20] (specs 0, 1, 2; axis from kIntVals[0])
    if (ops[i].name == "LayerNormalization") {
      std::vector<uint8_t> b(kHeader, 0);
      const uint8_t shapes[3][4] = {{3, 3, 14, 21}, {0, 21, 0, 0}, {0, 21, 0, 0}};
      b[kOp] = static_cast<uint8_t>(i);
      b[kSeed0] = static_cast<uint8_t>(count);
      for (int j = 0; j < 3; j++) std::memcpy(&b[kShapes + 4 * j], shapes[j], 4);
      const std::string path = std::string(dir) + "/seed-" + ops[i].name + "-" + std::to_string(count++);
      if (FILE* f = std::fopen(path.c_str(), "wb")) { std::fwrite(b.data(), 1, b.size(), f); std::fclose(f); }
      continue;
    }
    if (ops[i].name == "Linear") {
      const uint8_t shapes[2][4][4] = {{{3, 3, 14, 21}, {1, 21, 38, 0}, {0, 38, 0, 0}, {3, 3, 14, 38}},
                                       {{3, 3, 31, 41}, {1, 41, 71, 0}, {0, 71, 0, 0}, {3, 3, 31, 71}}};
      for (int t = 0; t < 2; t++) {
        std::vector<uint8_t> b(kHeader, 0);
        b[kOp] = static_cast<uint8_t>(i);
        b[kThreads] = static_cast<uint8_t>(t);
        b[kSeed0] = static_cast<uint8_t>(count);
        for (int j = 0; j < 4; j++) std::memcpy(&b[kShapes + 4 * j], shapes[t][j], 4);
        const std::string path = std::string(dir) + "/seed-" + ops[i].name + "-" + std::to_string(count++);
        if (FILE* f = std::fopen(path.c_str(), "wb")) { std::fwrite(b.data(), 1, b.size(), f); std::fclose(f); }
      }
      continue;
    }
    for (const Variant& v : vs) {
      if (v.beta1 && ops[i].sch && ops[i].sch->drop_state < 0) continue;
      std::vector<uint8_t> b(kHeader, 0);
      b[kOp] = static_cast<uint8_t>(i);
      b[kListLen] = static_cast<uint8_t>(v.len - 1);
      b[kThroughNeg] = v.neg;
      b[kThreads] = v.threads2;
      b[kSeed0] = static_cast<uint8_t>(count);
      std::memcpy(&b[kShapes], v.shape, 4);
      if (v.beta1) b[kAttrs] = 4;  // float form, kFloatVals[1] = 0
      // LayerNormalizationGrad's optional dR: left out, or shaped like dY (spec 0 by bit 5 of the list byte)
      if (ops[i].name == "LayerNormalizationGrad") {
        if (count % 2) b[kOmitIn] = 6;
        else b[kListLen] = static_cast<uint8_t>(b[kListLen] | 0x20);
      }
      const std::string path = std::string(dir) + "/seed-" + ops[i].name + "-" + std::to_string(count++);
      if (FILE* f = std::fopen(path.c_str(), "wb")) { std::fwrite(b.data(), 1, b.size(), f); std::fclose(f); }
    }
  }
  std::fprintf(stderr, "fuzz_ops: wrote %d seeds to %s\n", count, dir);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("FUZZ_OPS_WRITE_SEEDS")) { WriteSeeds(dir); std::exit(0); }
  const std::string lib = OrtLibPath();
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) { std::fprintf(stderr, "fuzz_ops: cannot load %s: %s\n", lib.c_str(), dlerror()); std::exit(2); }
  auto getBase = reinterpret_cast<const OrtApiBase* (*)()>(dlsym(h, "OrtGetApiBase"));
  if (!getBase) { std::fprintf(stderr, "fuzz_ops: %s has no OrtGetApiBase\n", lib.c_str()); std::exit(2); }
  const OrtApiBase* base = getBase();
  ort = base->GetApi(ORT_API_VERSION);
  if (!ort) { std::fprintf(stderr, "fuzz_ops: %s lacks ORT API %d\n", lib.c_str(), ORT_API_VERSION); std::exit(2); }
  Check(ort->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "fuzz_ops", &env), "CreateEnv");
  for (int t = 0; t < 2; t++) {
    OrtSessionOptions*& o = opts[t];
    Check(ort->CreateSessionOptions(&o), "CreateSessionOptions");
    // 1 or 2 threads: the fuzzer looks for memory and UB errors, not races (no TSan), and the host is shared; 2 runs
    // the kernels' chunks on a real pool thread
    Check(ort->SetIntraOpNumThreads(o, 1 + t), "SetIntraOpNumThreads");
    Check(ort->SetInterOpNumThreads(o, 1), "SetInterOpNumThreads");
    Check(ort->AddSessionConfigEntry(o, "session.intra_op.allow_spinning", "0"), "AddSessionConfigEntry");
    // no graph rewrites (cheaper sessions; the node reaches the kernel as written)
    Check(ort->SetSessionGraphOptimizationLevel(o, ORT_DISABLE_ALL), "SetSessionGraphOptimizationLevel");
    // no arena: every output is its own malloc, so ASan sees a kernel write past a tensor's end
    Check(ort->DisableCpuMemArena(o), "DisableCpuMemArena");
    // registered once per options: the library keeps its domain for the life of the process
    Check(RegisterCustomOps(o, base), "RegisterCustomOps");
  }
  Check(ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &cpu), "CreateCpuMemoryInfo");
  stats.resize(Ops().size());
  printStats = std::getenv("FUZZ_OPS_STATS") != nullptr;
  on_exit(AtExit, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Case c = Decode(Bytes{data, size});
  Stats& s = stats[static_cast<size_t>(c.op - Ops().data())];
  s.execs++;
  OrtSession* sess = nullptr;
  const double t0 = Now();
  OrtStatus* created = ort->CreateSessionFromArray(env, c.model.data(), c.model.size(), opts[c.threads2], &sess);
  const double t1 = Now();
  sessionSeconds += t1 - t0;
  if (OrtStatus* st = created) {
    if (std::getenv("FUZZ_OPS_VERBOSE")) std::fprintf(stderr, "session: %s\n", ort->GetErrorMessage(st));
    ort->ReleaseStatus(st);
    s.sessionErr++;
    return 0;
  }
  std::vector<OrtValue*> vals;
  std::vector<const char*> inNames, outNames;
  static uint8_t empty[8];
  OrtStatus* st = nullptr;
  for (const Feed& f : c.feeds) {
    OrtValue* v = nullptr;
    void* p = f.data.empty() ? empty : const_cast<uint8_t*>(f.data.data());
    st = ort->CreateTensorWithDataAsOrtValue(cpu, p, f.data.size(), f.dims.data(), f.dims.size(),
                                             static_cast<ONNXTensorElementDataType>(f.type), &v);
    if (st) break;
    vals.push_back(v);
    inNames.push_back(f.name.c_str());
  }
  for (const std::string& o : c.outputs) outNames.push_back(o.c_str());
  std::vector<OrtValue*> outs(outNames.size(), nullptr);
  if (!st && !outNames.empty())
    st = ort->Run(sess, nullptr, inNames.data(), vals.data(), vals.size(), outNames.data(), outNames.size(), outs.data());
  if (st) {
    const char* msg = ort->GetErrorMessage(st);
    if (std::getenv("FUZZ_OPS_VERBOSE")) std::fprintf(stderr, "run: %s\n", msg);
    // the kernel's errors start with the op's label ("AdamW 'fuzz_node': …"): Compute was entered
    if (std::strstr(msg, (c.op->name + " 'fuzz_node'").c_str()) || std::strstr(msg, (c.op->name + ":").c_str()))
      s.kernelErr++;
    else
      s.otherRunErr++;
    ort->ReleaseStatus(st);
  } else if (!outNames.empty()) {
    s.runOk++;
    if (!c.rawBits) CheckWritten(c, outNames, outs);
  }
  for (OrtValue* v : outs)
    if (v) ort->ReleaseValue(v);
  for (OrtValue* v : vals) ort->ReleaseValue(v);
  ort->ReleaseSession(sess);
  runSeconds += Now() - t1;
  return 0;
}
