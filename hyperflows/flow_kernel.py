"""The flow step as one compiled C++ pass per layer (``method.flow_step=kernel``, CPU, fp32 or bf16 flows).

Forward writes ŵ = w ⊙ [t ≥ 0] in one pass (two in PyTorch) and keeps no mask: backward reads ∂L/∂ŵ, w, t and
Adam's moments once, takes m = [t ≥ 0] from t before updating it, and writes ∂L/∂w = m ⊙ ∂L/∂ŵ, t and the moments:
the flow gradient c·(w ⊙ ∂L/∂ŵ) + p (eq. 6 + eq. 10) and the Adam step on t, which PyTorch does in four passes
(g·m, g·w, +p, fused Adam). 12 streams of N floats per layer and step in all, the least any flow step can move
(``flowprune bench hyperflows`` times that floor). The arithmetic is PyTorch's
fused CPU Adam in fp32, compiled without contraction into FMAs; it may differ from ``torch._fused_adam_`` in the
last bit on the elements that kernel handles in double (its scalar tail), so flows agree to ~1e-7, and the masks of
a run agree with the pure-PyTorch step's (tests/hyperflows/test_flow_step.py). With bf16 flows (``method.flow_dtype=bfloat16``) the
kernel reads and writes t and the moments as bf16 (half their traffic), computes in fp32 and rounds stochastically
as :func:`hyperflows.flow_step.stochastic_round_bf16` does, with its 16 random bits from a counter-based hash of the
element's index and a key drawn per call from the sink's generator (so checkpoints keep the stream); the draws differ
from the PyTorch path's, the distribution does not. Built on first use with
``torch.utils.cpp_extension`` (a C++ compiler and ninja); where that fails the PyTorch step runs, with a warning.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>

constexpr int64_t GRAIN = 1 << 15;

// flows and Adam's moments are stored as fp32 or as bf16 (the top 16 bits of an fp32); arithmetic is fp32
static inline float from_bf16(uint16_t x) { uint32_t b = uint32_t(x) << 16; float f; std::memcpy(&f, &b, 4); return f; }
static inline float load(float x) { return x; }
static inline float load(uint16_t x) { return from_bf16(x); }
// stochastic rounding to bf16: add 16 random bits to the fp32 pattern and cut them (as stochastic_round_bf16)
static inline void put(float* dst, float x, uint32_t) { *dst = x; }
static inline void put(uint16_t* dst, float x, uint32_t noise) {
  uint32_t b; std::memcpy(&b, &x, 4); *dst = uint16_t((b + (noise & 0xFFFFu)) >> 16);
}
// a counter-based hash (murmur3's finaliser): the same bits for an element whatever the thread split
static inline uint32_t mix(uint32_t x) {
  x ^= x >> 16; x *= 0x85ebca6bu; x ^= x >> 13; x *= 0xc2b2ae35u; x ^= x >> 16; return x;
}

template <typename ST>
static void masked_range(const float* __restrict__ W, const ST* __restrict__ T, float* __restrict__ O,
                         int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) O[i] = W[i] * (load(T[i]) >= 0.f ? 1.f : 0.f);
}

template <typename ST>
static const ST* ptr(const torch::Tensor& x) { return reinterpret_cast<const ST*>(x.data_ptr()); }
template <typename ST>
static ST* mptr(torch::Tensor& x) { return reinterpret_cast<ST*>(x.data_ptr()); }

torch::Tensor masked_weight(torch::Tensor w, torch::Tensor t) {
  TORCH_CHECK(w.is_contiguous() && t.is_contiguous() && w.numel() == t.numel(), "contiguous w and t of one size");
  TORCH_CHECK(w.scalar_type() == at::kFloat, "fp32 weights");
  auto out = torch::empty_like(w);
  const float* W = w.data_ptr<float>(); float* O = out.data_ptr<float>();
  if (t.scalar_type() == at::kBFloat16) {
    const uint16_t* T = ptr<uint16_t>(t);
    at::parallel_for(0, w.numel(), GRAIN, [&](int64_t b, int64_t e) { masked_range(W, T, O, b, e); });
  } else {
    const float* T = t.data_ptr<float>();
    at::parallel_for(0, w.numel(), GRAIN, [&](int64_t b, int64_t e) { masked_range(W, T, O, b, e); });
  }
  return out;
}

struct Coeffs { float c, p0, wd, b1, b2, c1, c2, step_size, bc2_sqrt, eps; uint32_t key1, key2; };

// elements [b, e): ∂L/∂w = m·g, the flow gradient (×c is exact for a power-of-two c, as in torch's fused
// multiply-add), then Adam in fp32 in the order of torch's fused CPU kernel; bf16 storage rounds stochastically
template <bool EACH, typename ST>
static void flow_step_range(const float* __restrict__ G, const float* __restrict__ W, const float* __restrict__ P,
                            ST* __restrict__ T, ST* __restrict__ A, ST* __restrict__ S, float* __restrict__ GW,
                            int64_t b, int64_t e, const Coeffs k) {
  constexpr bool SR = !std::is_same<ST, float>::value;
  for (int64_t i = b; i < e; ++i) {
    const float gi = G[i], ti = load(T[i]);
    GW[i] = gi * (ti >= 0.f ? 1.f : 0.f);   // the forward's mask: t is unchanged since
    float gr = (gi * W[i]) * k.c + (EACH ? P[i] : k.p0);
    gr = k.wd != 0.f ? gr + ti * k.wd : gr;
    const float a = load(A[i]) * k.b1 + gr * k.c1;
    const float s = load(S[i]) * k.b2 + gr * gr * k.c2;
    const float tn = ti - k.step_size * a / (std::sqrt(s) / k.bc2_sqrt + k.eps);
    const uint32_t h1 = SR ? mix(k.key1 + uint32_t(i) * 0x9E3779B9u) : 0u;
    const uint32_t h2 = SR ? mix(h1 ^ k.key2) : 0u;
    put(&A[i], a, h1 >> 16);
    put(&S[i], s, h2);
    put(&T[i], tn, h1);
  }
}

template <typename ST>
static void run_step(const float* G, const float* W, const float* P, ST* T, ST* A, ST* S, float* GW, int64_t n,
                     const Coeffs& k) {
  at::parallel_for(0, n, GRAIN, [&](int64_t b, int64_t e) {
    if (P) flow_step_range<true>(G, W, P, T, A, S, GW, b, e, k);
    else flow_step_range<false>(G, W, P, T, A, S, GW, b, e, k);
  });
}

torch::Tensor flow_step(torch::Tensor g, torch::Tensor w, torch::Tensor t, torch::Tensor exp_avg,
                        torch::Tensor exp_avg_sq, double slope, double pressure, c10::optional<torch::Tensor> p_each,
                        int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                        int64_t key) {
  g = g.contiguous();
  TORCH_CHECK(w.is_contiguous() && t.is_contiguous() && exp_avg.is_contiguous()
              && exp_avg_sq.is_contiguous(), "contiguous tensors");
  TORCH_CHECK(t.scalar_type() == exp_avg.scalar_type() && t.scalar_type() == exp_avg_sq.scalar_type(),
              "t and Adam's moments of one dtype");
  auto gw = torch::empty_like(g);
  const double bc1 = 1 - std::pow(beta1, (double)step), bc2 = 1 - std::pow(beta2, (double)step);
  const Coeffs k{(float)slope, (float)pressure, (float)weight_decay, (float)beta1, (float)beta2,
                 (float)(1 - beta1), (float)(1 - beta2), (float)(lr / bc1), (float)std::sqrt(bc2), (float)eps,
                 (uint32_t)(uint64_t(key) & 0xFFFFFFFFu), (uint32_t)(uint64_t(key) >> 32)};
  const float* G = g.data_ptr<float>(); const float* W = w.data_ptr<float>();
  const float* P = p_each.has_value() ? p_each->data_ptr<float>() : nullptr;
  float* GW = gw.data_ptr<float>();
  if (t.scalar_type() == at::kBFloat16)
    run_step(G, W, P, mptr<uint16_t>(t), mptr<uint16_t>(exp_avg), mptr<uint16_t>(exp_avg_sq), GW, g.numel(), k);
  else
    run_step(G, W, P, t.data_ptr<float>(), exp_avg.data_ptr<float>(), exp_avg_sq.data_ptr<float>(), GW, g.numel(), k);
  return gw;
}

// ŵ = w ⊙ [t ≥ 0] as an autograd function whose backward is the step above, all in C++: no Python runs in
// backward. What the step needs (Adam's state, the pressure, the LR, the rounding key) is taken at forward time;
// nothing changes them between a step's forward and its backward.
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FlowWeight : public torch::autograd::Function<FlowWeight> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor w, torch::Tensor t, torch::Tensor exp_avg,
                               torch::Tensor exp_avg_sq, torch::Tensor step, c10::optional<torch::Tensor> p_each,
                               double slope, double pressure, double lr, double beta1, double beta2, double eps,
                               double weight_decay, int64_t key) {
    ctx->saved_data["w"] = w; ctx->saved_data["t"] = t; ctx->saved_data["a"] = exp_avg;
    ctx->saved_data["s"] = exp_avg_sq; ctx->saved_data["step"] = step;
    ctx->saved_data["p_each"] = p_each.has_value() ? c10::IValue(*p_each) : c10::IValue();
    ctx->saved_data["coef"] = std::vector<double>{slope, pressure, lr, beta1, beta2, eps, weight_decay};
    ctx->saved_data["key"] = key;
    return masked_weight(w, t);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    torch::NoGradGuard no_grad;
    auto step = ctx->saved_data["step"].toTensor();
    step.add_(1);
    const auto c = ctx->saved_data["coef"].toDoubleVector();
    auto p = ctx->saved_data["p_each"];
    c10::optional<torch::Tensor> p_each = p.isNone() ? c10::nullopt : c10::optional<torch::Tensor>(p.toTensor());
    auto t = ctx->saved_data["t"].toTensor();
    auto gw = flow_step(grads[0], ctx->saved_data["w"].toTensor(), t, ctx->saved_data["a"].toTensor(),
                        ctx->saved_data["s"].toTensor(), c[0], c[1], p_each, (int64_t)step.item<float>(), c[2], c[3],
                        c[4], c[5], c[6], ctx->saved_data["key"].toInt());
    variable_list out(14);
    out[0] = gw;
    return out;
  }
};

torch::Tensor flow_weight(torch::Tensor w, torch::Tensor t, torch::Tensor exp_avg, torch::Tensor exp_avg_sq,
                          torch::Tensor step, c10::optional<torch::Tensor> p_each, double slope, double pressure,
                          double lr, double beta1, double beta2, double eps, double weight_decay, int64_t key) {
  return FlowWeight::apply(w, t, exp_avg, exp_avg_sq, step, p_each, slope, pressure, lr, beta1, beta2, eps,
                           weight_decay, key);
}
"""

_module = None
_failed = False


def load():
    """The compiled module (built once per machine, cached by torch), or None where it cannot be built."""
    global _module, _failed
    if _module is None and not _failed:
        try:
            from torch.utils.cpp_extension import load_inline

            _module = load_inline("flowprune_flow_kernel", _SOURCE, functions=["masked_weight", "flow_step", "flow_weight"],
                                  extra_cflags=["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"],
                                  verbose=False)
        except Exception as e:   # no compiler / ninja / headers: the PyTorch step is the fallback
            _failed = True
            log.warning("hyperflows: the C++ flow kernel could not be built (%s: %s); using the PyTorch step",
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    return _module


def supports(t: torch.Tensor) -> bool:
    """Whether the kernel can update ``t``: fp32 or bf16 on the CPU."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.bfloat16)


class KernelFlowStep:
    """A flow sink whose forward and in-backward update run in the compiled kernel; wraps an
    :class:`hyperflows.flow_step.InBackwardFlowStep` for Adam's state, group settings and the pressure."""

    def __init__(self, step, module):
        self.inner, self.module = step, module
        self.generator = step.generator   # checkpoints save the rounding stream of every sink

    def weight(self, w: torch.Tensor, t: torch.Tensor, slope: float) -> torch.Tensor | None:
        """ŵ = w ⊙ [t ≥ 0] through the compiled autograd function, whose backward (C++, no Python) writes ∂L/∂w
        and moves t and Adam's state (a strided w goes in as a contiguous copy, autograd carries ∂L/∂w back);
        None where the kernel does not apply: the PyTorch function runs and this sink's call does its step."""
        if not (supports(t) and w.dtype == torch.float32):
            return None
        grp = self.inner.group
        p = self.inner.pressure(t)
        each = None
        if torch.is_tensor(p):
            each = p.to(torch.float32).expand(t.shape).contiguous()
            p = 0.0
        st = self.inner.state(t)
        beta1, beta2 = grp["betas"]
        lr = grp["lr"].item() if torch.is_tensor(grp["lr"]) else grp["lr"]
        return self.module.flow_weight(w.contiguous(), t, st["exp_avg"], st["exp_avg_sq"], st["step"], each,
                                       float(slope), float(p), float(lr), beta1, beta2, grp["eps"],
                                       grp["weight_decay"], self.key(t))

    def key(self, t: torch.Tensor) -> int:
        """The stochastic rounding's key for one step of ``t`` (bf16 flows), drawn from the sink's generator."""
        if t.dtype == torch.float32:
            return 0
        return int(torch.randint(0, 1 << 62, (), dtype=torch.int64, generator=self.generator))

    def __call__(self, t, g, w, m, slope):
        """The in-backward step where :meth:`weight` did not apply (GPU flows, a non-fp32 weight): PyTorch's."""
        return self.inner(t, g, w, m, slope)


def kernel_or_none(step):
    """A :class:`KernelFlowStep` around ``step`` where the kernel builds, else None (the caller keeps ``step``)."""
    module = load()
    return KernelFlowStep(step, module) if module is not None else None

