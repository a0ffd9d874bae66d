"""Measurement: accuracy, parameter counts, sparsity, MACs (dense and effective) and latency."""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str | None = None,
             amp_dtype: torch.dtype | None = None, topk: tuple[int, ...] = (1, 5)) -> dict:
    """Top-1 (and top-5 when there are more than 10 classes) accuracy in %, and mean CE loss."""
    was_training = model.training
    model.eval()
    correct = {k: 0 for k in topk}
    loss_sum, n = 0.0, 0
    num_classes = None
    for x, y in loader:
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        ctx = torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        with ctx:
            logits = model(x)
        logits = logits.float()
        num_classes = logits.shape[1]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(max(topk), num_classes), dim=1).indices
        hit = top == y[:, None]
        for k in topk:
            correct[k] += hit[:, :k].any(dim=1).sum().item()
        n += y.numel()
    model.train(was_training)
    if n == 0:
        return {"acc": float("nan"), "loss": float("nan")}
    out = {"acc": 100.0 * correct[1] / n, "loss": loss_sum / n}
    if num_classes and num_classes > 10 and 5 in topk:
        out["acc5"] = 100.0 * correct[5] / n
    return out


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv2d / Linear modules by qualified name (the weights unstructured methods mask)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}


def layer_density(model: nn.Module) -> dict[str, float]:
    """Fraction of non-zero effective weights per prunable layer."""
    return {name: float((m.weight != 0).float().mean()) for name, m in prunable_layers(model).items()}


def param_counts(model: nn.Module) -> dict:
    """Total / non-zero parameters, and the same over prunable (conv/linear) weights.

    Measure a *finalized* model: mask parametrizations baked into plain weights (methods' ``finalize``).
    """
    params = list(model.parameters())
    prunable = [m.weight for m in prunable_layers(model).values()]
    w_total = sum(w.numel() for w in prunable)
    w_nonzero = sum(int((w != 0).sum()) for w in prunable)
    return {"params_total": sum(p.numel() for p in params),
            "params_nonzero": sum(int((p != 0).sum()) for p in params),
            "prunable_total": w_total, "prunable_nonzero": w_nonzero,
            "sparsity": 1.0 - w_nonzero / max(w_total, 1)}


@torch.no_grad()
def layer_macs(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """Dense multiply-accumulates of each Conv2d/Linear layer for one forward of ``example_input``."""
    macs: dict[str, int] = {}
    handles = []
    for name, m in prunable_layers(model).items():
        def hook(mod, inp, out, name=name):
            if isinstance(mod, nn.Conv2d):
                per_out = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                macs[name] = macs.get(name, 0) + out.numel() * per_out
            else:
                macs[name] = macs.get(name, 0) + out.numel() * mod.in_features
        handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return macs


def padded_macs(model: nn.Module, example_input: torch.Tensor, block: int = 16) -> int:
    """Conv/linear MACs with every layer's output width rounded up to a multiple of ``block``: what a kernel that
    computes output channels in blocks really pays (a 16 → 4 conv costs what 16 → 16 does on CPU, block 16)."""
    per_layer = layer_macs(model, example_input)
    total = 0
    for name, m in prunable_layers(model).items():
        width = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        total += per_layer.get(name, 0) * (-(-width // block) * block) / width
    return int(round(total))


def count_macs(model: nn.Module, example_input: torch.Tensor) -> dict:
    """Dense MACs (torch-pruning's counter) and effective MACs (conv/linear MACs scaled by layer density).

    ``example_input`` should have batch size 1 so the numbers are per image.
    """
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    try:
        dense, _ = tp.utils.count_ops_and_params(model, example_inputs=example_input)
    finally:
        model.train(was_training)
    per_layer = layer_macs(model, example_input)
    density = layer_density(model)
    saved = sum(macs * (1.0 - density[name]) for name, macs in per_layer.items())
    return {"macs_dense": int(dense), "macs_effective": int(round(dense - saved)), "layer_macs": per_layer}


def device_name(device: torch.device | str = "cpu") -> str:
    """The machine a measurement ran on, for bench headers: the GPU's name, or the CPU's model, its vector ISA (which
    sets the conv kernels' channel block) and torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        import platform
        model = platform.processor() or model
    return f"{model} ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} thread(s))"


def kernel_channel_block() -> int:
    """Output channels this CPU's fp32 conv kernels compute in one block (oneDNN's blocked layouts): 16 with
    AVX-512 (nChw16c), 8 otherwise (AVX2's nChw8c). A width off the block costs what the next multiple costs."""
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


def channel_block(value, key: str = "measure.channel_block") -> int:
    """``value`` as a channel block: ``auto`` is :func:`kernel_channel_block`, else a positive integer."""
    if str(value) == "auto":
        return kernel_channel_block()
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise ConfigError(f"{key}={value}: use a positive integer (1: no rounding) or auto (this CPU's conv "
                          f"kernel block, {kernel_channel_block()} here)")
    return int(value)


@torch.no_grad()
def latency_ms(model: nn.Module, example_input: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall-clock of one forward (ms); warm-up runs excluded, CUDA synchronised."""
    was_training = model.training
    model.eval()
    sync = torch.cuda.synchronize if example_input.is_cuda else (lambda: None)
    times = []
    try:
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(example_input)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    return statistics.median(times)


def inference_copy(model: nn.Module, channels_last: bool = True, fold_bn: bool = True) -> nn.Module:
    """An eval-mode copy in a deployment form for latency measurements: BatchNorm folded into the preceding
    conv (``torch.fx`` fusion; left as is when the model does not trace) and NHWC (channels-last) weights.
    Feed it ``x.contiguous(memory_format=torch.channels_last)`` when ``channels_last``."""
    import copy

    net = copy.deepcopy(model).eval()
    if fold_bn and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        from torch.fx.experimental.optimization import fuse   # (a traced ViT would not export: nothing to fold)
        try:
            net = fuse(net)
        except Exception:  # not symbolically traceable: keep the BN layers
            pass
    return net.to(memory_format=torch.channels_last) if channels_last else net


#: the forms a model is timed in; the fastest faithful one counts (all compute the same function)
FORMS = ("eager", "deploy", "frozen", "onnxruntime", "sparse")


def in_form(model: nn.Module, form: str, example: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """``model`` and ``example`` in a timing form: ``eager`` (the model as trained, eval mode), ``deploy``
    (:func:`inference_copy`: BN folded, channels-last for 4-D inputs), ``frozen`` (the deploy form traced, frozen
    and optimised for inference by TorchScript), ``onnxruntime`` (exported to ONNX in memory, run by ONNX Runtime
    with torch's thread count) or ``sparse`` (a copy whose mostly-zero Linear layers run as CSR where that
    measured faster: :func:`experiments.sparsity.sparse_inference.sparsify`)."""
    if form == "eager":
        return model, example
    if form == "sparse":
        import copy

        from .sparsity.sparse_inference import sparsify
        return sparsify(copy.deepcopy(model).eval(), example)[0], example
    if form == "onnxruntime":
        from .export import OnnxRuntimeModule
        return OnnxRuntimeModule(inference_copy(model, channels_last=False), example), example
    image = example.dim() == 4
    net = inference_copy(model, channels_last=image)
    x = example.contiguous(memory_format=torch.channels_last) if image else example
    if form == "frozen":
        net = _Frozen(net, x)
    elif form != "deploy":
        raise ValueError(f"unknown timing form {form!r}; one of {FORMS}")
    return net, x


class _Frozen(nn.Module):
    """``net`` traced on ``x``, frozen and optimised for inference by TorchScript (a timing form)."""

    def __init__(self, net: nn.Module, x: torch.Tensor):
        super().__init__()
        import warnings

        with torch.no_grad(), warnings.catch_warnings():   # TorchScript announces its deprecation on every call
            warnings.simplefilter("ignore", FutureWarning)
            self.script = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.trace(net.eval(), x, check_trace=False).eval()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)


def forms_for(model: nn.Module, allowed: Iterable[str] = FORMS) -> tuple[str, ...]:
    """The forms of ``allowed`` that can differ for ``model``: ``sparse`` only where a Linear layer is mostly
    zeros (elsewhere it is the eager model again, timed for nothing); ``onnxruntime`` where it is installed and
    the model is on the CPU."""
    import importlib.util

    from .sparsity.sparse_inference import MIN_SPARSITY

    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    ok = {"sparse": any(isinstance(m, nn.Linear) and float((m.weight == 0).float().mean()) >= MIN_SPARSITY
                        for m in model.modules()),
          "onnxruntime": on_cpu and importlib.util.find_spec("onnxruntime") is not None}
    return tuple(f for f in FORMS if f in allowed and ok.get(f, True))


def _faithful_forms(net: nn.Module, forms: Iterable[str], x: torch.Tensor, who: str) -> dict:
    """{form: (module, input)} for the forms of ``net`` that build and compute what the eager model computes
    (outputs within 1e-3); a form that cannot be built or deviates is left out with a warning."""
    import logging

    log = logging.getLogger(__name__)
    ref = net.eval()(x).float()
    runs = {}
    for form in forms:
        try:
            run = in_form(net, form, x)
            out = run[0](run[1]).float()
        except Exception as e:  # an exporter/tracer that cannot take this model: time the other forms
            log.warning("timing form %s of the %s model is unavailable (%s: %s)", form, who, type(e).__name__,
                        (str(e).splitlines() or [""])[0])
            continue
        if torch.allclose(out, ref, rtol=1e-3, atol=1e-3):
            runs[form] = run
        else:
            log.warning("timing form %s of the %s model deviates from it (max |diff| %.1e); not timed",
                        form, who, float((out - ref).abs().max()))
    if not runs:   # e.g. measure.speedup_forms=[onnxruntime] for a model on the GPU: the model as it is
        log.warning("no timing form of %s is available for the %s model; timing it eager", list(forms), who)
        runs["eager"] = (net, x)
    return runs


def speedups(dense: nn.Module, pruned: nn.Module, examples: dict[int, torch.Tensor], repeats: int = 20,
             rounds: int = 3, forms: Iterable[str] = FORMS) -> dict:
    """Measured speed-up of ``pruned`` over ``dense`` per batch size, each model in its fastest faithful form of
    ``forms`` (:data:`FORMS`): every (model, form) is timed ``rounds`` times in alternation and keeps its best
    median, so a load spike on a shared machine hits both sides alike. ``speedup_bs<b>`` = dense ms ÷ pruned ms,
    with the winning forms and both latencies."""
    out = {}
    with torch.inference_mode():
        for b, x in examples.items():
            runs = {(who, form): run for who, net in (("dense", dense), ("pruned", pruned))
                    for form, run in _faithful_forms(net, forms_for(net, forms), x, who).items()}
            best = {key: float("inf") for key in runs}
            for _ in range(rounds):   # round by round over every (model, form): a slow spell hits all alike
                for key in runs:
                    best[key] = min(best[key], latency_ms(*runs[key], repeats=repeats))
            d_form = min((f for who, f in runs if who == "dense"), key=lambda f: best["dense", f])
            p_form = min((f for who, f in runs if who == "pruned"), key=lambda f: best["pruned", f])
            d_ms, p_ms = best["dense", d_form], best["pruned", p_form]
            out.update({f"speedup_bs{b}": d_ms / p_ms, f"speedup_form_bs{b}": f"{p_form} vs dense {d_form}",
                        f"latency_best_ms_bs{b}": p_ms, f"dense_latency_best_ms_bs{b}": d_ms})
    return out
