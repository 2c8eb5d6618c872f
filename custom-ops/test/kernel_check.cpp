// Standalone check of the kernel skeleton (no ORT): every optimizer's CPU kernel against a float64 reference
// written from the contract, on random data of many sizes over many steps with changing scalars. Outputs are
// poisoned with NaN before each step so an element the kernel skips is caught. Exit code 1 on any mismatch.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include "ademamix/kernels.h"

using namespace ademamix;

static double g_worst = 0;

static bool Compare(const char* what, size_t n, const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!std::isfinite(got[i])) { std::printf("FAIL %s n=%zu: element %zu not written (NaN)\n", what, n, i); return false; }
    num = std::fmax(num, std::fabs(got[i] - ref[i]));
    den = std::fmax(den, std::fabs(ref[i]));
  }
  // relative to the parameters' scale (at least 1: a parameter crossing zero has no relative scale of its own)
  const double rel = num / std::fmax(den, 1.0);
  if (rel > g_worst) g_worst = rel;
  if (rel > 1e-5) { std::printf("FAIL %s n=%zu: relative error %.3g\n", what, n, rel); return false; }
  return true;
}

// kind: 0 AdEMAMix, 1 AdEMAMix beta1=0, 2 Simplified (bc1+bc2), 3 Simplified (no bc), 4 AdamW
static bool RunCase(int kind, size_t n, int steps, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> p(n), g(n), po(n), s[3], so[3];
  std::vector<double> rp(n), rs[3];
  for (size_t i = 0; i < n; i++) rp[i] = p[i] = nd(rng);
  for (int k = 0; k < 3; k++) { s[k].assign(n, 0.f); so[k].assign(n, 0.f); rs[k].assign(n, 0.0); }
  const double b1 = kind == 1 ? 0.0 : 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  double s1 = 0;
  for (int t = 1; t <= steps; t++) {
    for (size_t i = 0; i < n; i++) g[i] = 0.3f * nd(rng) + 0.5f * (p[i] - std::sin(double(i) + t / 50.0));
    const double lr = 1e-2 * (1.0 + 0.5 * std::cos(t / 7.0)), alpha = 8.0 * std::fmin(t / double(steps), 1.0);
    const double beta3 = 0.9999 - 0.01 * std::exp(-t / 20.0);
    Streams x{p.data(), g.data(), {s[0].data(), s[1].data(), s[2].data()}, po.data(), {so[0].data(), so[1].data(), so[2].data()}};
    for (auto* v : {&po, &so[0], &so[1], &so[2]}) v->assign(n, NAN);
    const size_t mid = n / 3;  // two ranges: the kernel must work on any sub-range
    if (kind <= 1) {
      AdemamixHyper h{b1, b2, eps, wd, lr, alpha, beta3, t};
      cpu::ademamix_range(h, x, 0, mid);
      cpu::ademamix_range(h, x, mid, n);
      const double bc1 = b1 == 0 ? 1 : 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
      for (size_t i = 0; i < n; i++) {
        const double gi = g[i];
        double m1 = gi;
        int k = 0;
        if (b1 != 0) { m1 = rs[0][i] = b1 * rs[0][i] + (1 - b1) * gi; k = 1; }
        const double m2 = rs[k][i] = beta3 * rs[k][i] + (1 - beta3) * gi;
        const double nu = rs[k + 1][i] = b2 * rs[k + 1][i] + (1 - b2) * gi * gi;
        rp[i] -= lr * ((m1 / bc1 + alpha * m2) / (std::sqrt(nu / bc2) + eps) + wd * rp[i]);
      }
      if (!Compare(kind == 0 ? "AdEMAMix" : "AdEMAMix(beta1=0)", n, po, rp)) return false;
    } else if (kind <= 3) {
      const bool bc = kind == 2;
      const double beta1 = 0.99 - 0.09 * std::exp(-t / 30.0);
      s1 = float(beta1) * float(s1) + 1.0f;
      SimplifiedHyper h{b2, eps, wd, lr, 5.0, beta1, t, bc, bc, s1};
      cpu::simplified_range(h, x, 0, mid);
      cpu::simplified_range(h, x, mid, n);
      const double s2 = 1 - std::pow(b2, t);
      for (size_t i = 0; i < n; i++) {
        const double gi = g[i];
        const double m = rs[0][i] = beta1 * rs[0][i] + gi;
        const double nu = rs[1][i] = b2 * rs[1][i] + (1 - b2) * gi * gi;
        double u = bc ? (m + 5.0 * gi) / (std::sqrt(nu / s2) + eps) : (m + 5.0 * gi) / (std::sqrt(nu) + eps * std::sqrt(s2));
        if (bc) u /= s1;
        rp[i] -= lr * (u + wd * rp[i]);
      }
      if (!Compare(bc ? "Simplified(bc1,bc2)" : "Simplified(no bc)", n, po, rp)) return false;
    } else {
      AdamWHyper h{b1, b2, eps, wd, lr, t};
      cpu::adamw_range(h, x, 0, mid);
      cpu::adamw_range(h, x, mid, n);
      const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
      for (size_t i = 0; i < n; i++) {
        const double gi = g[i];
        rp[i] *= 1 - lr * wd;
        const double m = rs[0][i] = b1 * rs[0][i] + (1 - b1) * gi;
        const double v = rs[1][i] = b2 * rs[1][i] + (1 - b2) * gi * gi;
        rp[i] -= lr * (m / bc1) / (std::sqrt(v / bc2) + eps);
      }
      if (!Compare("AdamW", n, po, rp)) return false;
    }
    p.swap(po);
    for (int k = 0; k < 3; k++) s[k].swap(so[k]);
  }
  return true;
}

int main() {
  std::mt19937 rng(1234);
  const size_t sizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 65, 1000, 1023, 4097, 100003};
  int failures = 0, cases = 0;
  for (int kind = 0; kind < 5; kind++)
    for (size_t n : sizes) {
      cases++;
      if (!RunCase(kind, n, n > 10000 ? 50 : 300, rng)) failures++;
    }
  std::printf("kernel_check: %d cases, %d failed, worst relative error %.3g\n", cases, failures, g_worst);
  return failures ? 1 : 0;
}
