// GENERATED from src/optim/defs/ by src/optim/schemas.ts (node scripts/gen-schemas.mjs): do not edit.
// test/schemas.test.ts regenerates it and fails on any difference.
// Per op: the per-step scalar inputs after `step`, the per-tensor states (one may be dropped when an attribute is 0),
// the attributes with their defaults, the optimizer-wide scalar states, and for the generic (multi-tensor only)
// ops the kernel functor (kernels.h) and whether it needs a per-tensor norm pass first.
#pragma once

namespace ademamix {
namespace schema {

struct Attr { const char* name; bool is_int; double dflt; };
struct Op {
  const char* name;       // ONNX op type (domain com.ademamix)
  const char* optimizer;  // definition name (--optimizer)
  int n_scalars; const char* const* scalars;
  int n_states; const char* const* states;
  int drop_state; const char* drop_attr;  // state slot absent when that attribute is 0; -1: none
  int n_attrs; const Attr* attrs;
  int n_globals; const char* const* globals;
  bool generic;  // multi-tensor fused op of the generic kernel (else one of the three original kernels)
  bool norm_pass;
};

inline constexpr const char* kAdEMAMixScalars[] = {"lr", "alpha", "beta3"};
inline constexpr const char* kAdEMAMixStates[] = {"m1", "m2", "nu"};
inline constexpr Attr kAdEMAMixAttrs[] = {{"beta1", false, 0.9}, {"beta2", false, 0.999}, {"eps", false, 1e-8}, {"weight_decay", false, 0.0}};
inline constexpr const char* kAdEMAMixGlobals[] = {nullptr};
inline constexpr int kAdEMAMix_beta1 = 0;
inline constexpr int kAdEMAMix_beta2 = 1;
inline constexpr int kAdEMAMix_eps = 2;
inline constexpr int kAdEMAMix_weight_decay = 3;
inline constexpr int kAdEMAMix_scalar_lr = 0;
inline constexpr int kAdEMAMix_scalar_alpha = 1;
inline constexpr int kAdEMAMix_scalar_beta3 = 2;

inline constexpr const char* kSimplifiedAdEMAMixScalars[] = {"lr", "alpha", "beta1"};
inline constexpr const char* kSimplifiedAdEMAMixStates[] = {"m", "nu"};
inline constexpr Attr kSimplifiedAdEMAMixAttrs[] = {{"beta2", false, 0.95}, {"eps", false, 1e-8}, {"weight_decay", false, 0.0}, {"bias_correction1", true, 0.0}, {"bias_correction2", true, 1.0}};
inline constexpr const char* kSimplifiedAdEMAMixGlobals[] = {"s1"};
inline constexpr int kSimplifiedAdEMAMix_beta2 = 0;
inline constexpr int kSimplifiedAdEMAMix_eps = 1;
inline constexpr int kSimplifiedAdEMAMix_weight_decay = 2;
inline constexpr int kSimplifiedAdEMAMix_bias_correction1 = 3;
inline constexpr int kSimplifiedAdEMAMix_bias_correction2 = 4;
inline constexpr int kSimplifiedAdEMAMix_scalar_lr = 0;
inline constexpr int kSimplifiedAdEMAMix_scalar_alpha = 1;
inline constexpr int kSimplifiedAdEMAMix_scalar_beta1 = 2;

inline constexpr const char* kAdamWScalars[] = {"lr"};
inline constexpr const char* kAdamWStates[] = {"m", "v"};
inline constexpr Attr kAdamWAttrs[] = {{"beta1", false, 0.9}, {"beta2", false, 0.999}, {"eps", false, 1e-8}, {"weight_decay", false, 0.01}};
inline constexpr const char* kAdamWGlobals[] = {nullptr};
inline constexpr int kAdamW_beta1 = 0;
inline constexpr int kAdamW_beta2 = 1;
inline constexpr int kAdamW_eps = 2;
inline constexpr int kAdamW_weight_decay = 3;
inline constexpr int kAdamW_scalar_lr = 0;

inline constexpr const char* kLionScalars[] = {"lr"};
inline constexpr const char* kLionStates[] = {"m"};
inline constexpr Attr kLionAttrs[] = {{"beta1", false, 0.9}, {"beta2", false, 0.99}, {"weight_decay", false, 0.0}};
inline constexpr const char* kLionGlobals[] = {nullptr};
inline constexpr int kLion_beta1 = 0;
inline constexpr int kLion_beta2 = 1;
inline constexpr int kLion_weight_decay = 2;
inline constexpr int kLion_scalar_lr = 0;

inline constexpr const char* kScheduleFreeAdamWScalars[] = {"lr", "sf_c"};
inline constexpr const char* kScheduleFreeAdamWStates[] = {"z", "nu"};
inline constexpr Attr kScheduleFreeAdamWAttrs[] = {{"beta1", false, 0.9}, {"beta2", false, 0.999}, {"eps", false, 1e-8}, {"weight_decay", false, 0.0}};
inline constexpr const char* kScheduleFreeAdamWGlobals[] = {nullptr};
inline constexpr int kScheduleFreeAdamW_beta1 = 0;
inline constexpr int kScheduleFreeAdamW_beta2 = 1;
inline constexpr int kScheduleFreeAdamW_eps = 2;
inline constexpr int kScheduleFreeAdamW_weight_decay = 3;
inline constexpr int kScheduleFreeAdamW_scalar_lr = 0;
inline constexpr int kScheduleFreeAdamW_scalar_sf_c = 1;

inline constexpr const char* kLAPropScalars[] = {"lr"};
inline constexpr const char* kLAPropStates[] = {"m", "nu"};
inline constexpr Attr kLAPropAttrs[] = {{"beta1", false, 0.9}, {"beta2", false, 0.999}, {"eps", false, 1e-8}, {"weight_decay", false, 0.0}};
inline constexpr const char* kLAPropGlobals[] = {nullptr};
inline constexpr int kLAProp_beta1 = 0;
inline constexpr int kLAProp_beta2 = 1;
inline constexpr int kLAProp_eps = 2;
inline constexpr int kLAProp_weight_decay = 3;
inline constexpr int kLAProp_scalar_lr = 0;

inline constexpr const char* kMARSScalars[] = {"lr"};
inline constexpr const char* kMARSStates[] = {"g_prev", "m", "nu"};
inline constexpr Attr kMARSAttrs[] = {{"beta1", false, 0.95}, {"beta2", false, 0.99}, {"eps", false, 1e-8}, {"gamma", false, 0.025}, {"weight_decay", false, 0.0}};
inline constexpr const char* kMARSGlobals[] = {nullptr};
inline constexpr int kMARS_beta1 = 0;
inline constexpr int kMARS_beta2 = 1;
inline constexpr int kMARS_eps = 2;
inline constexpr int kMARS_gamma = 3;
inline constexpr int kMARS_weight_decay = 4;
inline constexpr int kMARS_scalar_lr = 0;

inline constexpr int kMaxAttrs = 5;
inline constexpr int kMaxScalars = 3;

inline constexpr Op kOps[] = {
    {"AdEMAMix", "ademamix", 3, kAdEMAMixScalars, 3, kAdEMAMixStates, 0, "beta1", 4, kAdEMAMixAttrs, 0, kAdEMAMixGlobals, false, false},
    {"SimplifiedAdEMAMix", "simplified", 3, kSimplifiedAdEMAMixScalars, 2, kSimplifiedAdEMAMixStates, -1, nullptr, 5, kSimplifiedAdEMAMixAttrs, 1, kSimplifiedAdEMAMixGlobals, false, false},
    {"AdamW", "adamw", 1, kAdamWScalars, 2, kAdamWStates, -1, nullptr, 4, kAdamWAttrs, 0, kAdamWGlobals, false, false},
    {"Lion", "lion", 1, kLionScalars, 1, kLionStates, -1, nullptr, 3, kLionAttrs, 0, kLionGlobals, true, false},
    {"ScheduleFreeAdamW", "sf-adamw", 2, kScheduleFreeAdamWScalars, 2, kScheduleFreeAdamWStates, -1, nullptr, 4, kScheduleFreeAdamWAttrs, 0, kScheduleFreeAdamWGlobals, true, false},
    {"LAProp", "laprop", 1, kLAPropScalars, 2, kLAPropStates, -1, nullptr, 4, kLAPropAttrs, 0, kLAPropGlobals, true, false},
    {"MARS", "mars", 1, kMARSScalars, 3, kMARSStates, -1, nullptr, 5, kMARSAttrs, 0, kMARSGlobals, true, true},
};
inline constexpr int kNumOps = 7;

// The generic ops: X(op index in kOps, ONNX op, kernel functor)
#define ADEMAMIX_GENERIC_OPS(X) \
  X(3, Lion, LionOp) \
  X(4, ScheduleFreeAdamW, SfAdamwOp) \
  X(5, LAProp, LapropOp) \
  X(6, MARS, MarsOp)

}  // namespace schema
}  // namespace ademamix
