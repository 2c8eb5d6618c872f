// The fused ops of the com.ademamix domain (src/nn_ops.cc), CPU only:
//   GeluGrad(dY, X) → dX                                  (attribute approximate: "none" | "tanh")
//   SoftmaxGrad(dY, Y) → dX                               (attribute axis: the last axis only)
//   LayerNormalizationGrad(dY, X, Scale, Mean, InvStdDev) → dX, dScale, dBias   (attribute axis)
//   WeightGrad(X [rows…, M], dY [rows…, N]) → dW = XᵀdY [M, N], dB = Σ_rows dY [N]   (the leading dims are rows)
//   SelfAttention(QKV) → Y, LSE and SelfAttentionGrad(dY, QKV, Y, LSE) → dQKV   (attributes heads, causal, scale)
//   Linear(X [..., K], W [K, N], B [N], R?) → Y = X·W + B (+ R)            (forward: bias and residual added in the tiles)
//   LayerNormalization(X, Scale, B) → Y, Mean, InvStdDev                    (forward, as ONNX's; attributes axis, epsilon)
//   Gelu(X) → Y                                                              (forward, as ONNX's; attribute approximate)
//   SoftmaxCrossEntropyLoss(scores [N, C], target [N] int64) → loss, log_prob    (as ONNX's; reduction, ignore_index)
//   SoftmaxCrossEntropyLossGrad(dLoss, log_prob, target) → dScores             (its score gradient)
// Each node in a model carries a function body of standard ops with the same math (src/ops/fused.ts, attention.ts,
// math.ts), so the graph runs where this library is not loaded (or on another execution provider: the body is
// inlined there).
#pragma once
#include "onnxruntime_c_api.h"

namespace ademamix {
// Adds the eleven ops to `domain` (the library's API pointer must be set).
OrtStatus* AddNnOps(OrtCustomOpDomain* domain);
}  // namespace ademamix
