"""Hyperflows training-step time and memory ÷ dense, measured in one process with the real code path.

Each regime is the project's own ``Trainer.train_epoch`` over the same in-memory batches:

- ``dense``: the plain model, SGD;
- ``masked``: ``experiments.sparsity.masks.BinaryMask`` on every Conv2d/Linear weight + the baselines'
  ``MaskUpdater`` with no rules (masks re-applied, momentum masked after each step);
- ``hyperflows``: ``FlowMask`` on every weight + ``HyperflowsCallback`` (pressure gradient each step,
  Adam on t, scheduler ticks), with a non-zero λ so the pressure path runs; the default ``method.flow_step``
  (``in_backward``: pressure folded in, Adam on t inside backward, no t.grad);
- ``hyperflows_reference``: the same with ``method.flow_step=optimizer`` (t.grad, a pressure pass, Adam after
  backward), to which the default is bit-equal;
- ``hyperflows_kernel``: the default step as one compiled C++ pass per layer (``method.flow_step=kernel``,
  :mod:`hyperflows.flow_kernel`; CPU fp32, elsewhere the PyTorch step);
- ``hyperflows_bf16``: the default with ``method.flow_dtype=bfloat16`` (t and its Adam moments in bf16,
  stochastically rounded): the memory option; ``hyperflows_kernel_bf16``: the same in the compiled kernel;
- ``floor``: dense + 12 streams of N floats per weight tensor and step (:class:`StreamFloor`), the memory any flow
  step must move (forward: read w, t, write ŵ; backward: read ∂L/∂ŵ, w, t and Adam's two moments, write ∂L/∂w, t
  and the moments), so ``time ÷ floor`` says how far an implementation is from this machine's limit.

Regimes alternate (dense, masked, hyperflows, dense, …) and the minimum (or `--stat median`) over repeats is reported;
on a 1-thread CPU run the clock is the training thread's CPU time (`--clock`), so other processes count less.
Memory: on CUDA the peak allocated bytes of a training block; on CPU the persistent training state
(parameters + gradients + optimizer state), since CPU peak allocation is not observable from torch.

    flowprune bench hyperflows                        # CPU: LeNet-300 and LeNet-5, batch 128
    flowprune bench hyperflows --models resnet50_cifar --batch-size 128   # on a GPU (bf16)
Writes ``<out>/bench/bench_hyperflows.{json,md}`` (``--out``, default results).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from experiments.models import create_model
from experiments.measure import device_name
from experiments.sparsity.clock import StepClock
from experiments.sparsity.flow_mask import attach_flow_masks
from experiments.sparsity.mask_updater import MaskUpdater
from experiments.sparsity.masks import BinaryMask, attach_masks, global_magnitude_masks, original_weights, set_masks
from experiments.train import Trainer, create_schedule
from experiments.train.callbacks import Callback
from flowprune.bench import add_out, out_stem
from hyperflows.method import Hyperflows

REGIMES = ("dense", "masked", "hyperflows", "hyperflows_kernel", "hyperflows_reference", "hyperflows_bf16",
           "hyperflows_kernel_bf16", "floor")
#: model -> (in_channels, image size, classes)
GEOMETRY = {"lenet300": (1, 28, 10), "lenet5": (1, 28, 10), "resnet50_cifar": (3, 32, 10),
            "vgg19_cifar": (3, 32, 10), "resnet8": (3, 32, 10), "resnet20": (3, 32, 10)}


class StreamFloor(Callback):
    """Each step, 4 ``torch.add(a, b, out=c)`` per weight tensor over w, ∂L/∂w and three N-float buffers standing
    for t and Adam's moments: 12 streams of N floats, the traffic of a flow step fused as far as it can be."""

    def __init__(self, model: torch.nn.Module):
        self.weights = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        self.buffers = [[torch.zeros_like(w) for _ in range(4)] for w in self.weights]

    @torch.no_grad()
    def on_after_backward(self, trainer: Trainer) -> None:
        for w, (t, a, s, out) in zip(self.weights, self.buffers):
            torch.add(w, t, out=out)        # the forward's 3 streams: w, t -> ŵ
            torch.add(w.grad, w, out=out)   # the backward's 9: ∂L/∂ŵ, w -> ∂L/∂w,
            torch.add(t, a, out=a)          # t and the first moment -> it,
            torch.add(s, t, out=t)          # the second moment and t -> t


def build_trainer(name: str, regime: str, batches: list, device: torch.device) -> Trainer:
    c, s, k = GEOMETRY[name]
    torch.manual_seed(0)
    model = create_model(name, num_classes=k, in_channels=c, image_size=s).to(device)
    callbacks = []
    if regime == "masked":
        attach_masks(model, lambda n, layer: BinaryMask(layer.weight))
        set_masks(model, global_magnitude_masks(dict(original_weights(model)), 0.1))
        callbacks = [MaskUpdater(model, StepClock())]
    elif regime.startswith("hyperflows"):
        step = "optimizer" if regime == "hyperflows_reference" else "kernel" if "kernel" in regime else "in_backward"
        method = Hyperflows(target_sparsity=0.9, epochs=10, seed=0, scheduler={"updates_per_epoch": 4},
                            flow_step=step, flow_dtype="bfloat16" if regime.endswith("bf16") else "float32")
        attach_flow_masks(model, seed=0, dtype=method.granularity.dtype)
        cb = method.make_callback(model)
        cb.lam = 0.5 ** 1.5       # pressure on: the per-step path includes the pressure gradient
        callbacks = [cb]
    elif regime == "floor":
        callbacks = [StreamFloor(model)]
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    trainer = Trainer(model, batches, {}, schedule=create_schedule(epochs=1, lr=0.01, name="constant"),
                      optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4},
                      callbacks=callbacks, device=device, amp=True, progress=False, phase=regime)
    for cb in callbacks:
        cb.on_fit_start(trainer)
    return trainer


def state_bytes(trainer: Trainer) -> int:
    """Parameters + the gradients that exist + optimizer state of every optimizer (the persistent training state;
    read after a training block, when every trained parameter's gradient is there unless its step needs none)."""
    opts = [trainer.optimizer] + [e.optimizer for e in trainer.extras]
    total = sum(b.numel() * b.element_size() for b in trainer.model.buffers())
    for opt in opts:
        for g in opt.param_groups:
            for p in g["params"]:
                total += p.numel() * p.element_size()
                total += p.grad.numel() * p.grad.element_size() if p.grad is not None else 0
                total += sum(v.numel() * v.element_size() for v in opt.state.get(p, {}).values()
                             if torch.is_tensor(v) and v.ndim > 0)
    return total


def time_block(trainer: Trainer, device: torch.device, clock=time.perf_counter) -> tuple[float, int | None]:
    """Seconds per step over one pass of the batches (by ``clock``), and the CUDA peak bytes (None on CPU)."""
    for cb in trainer.callbacks:
        cb.on_epoch_start(trainer, 0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync()
    t0 = clock()
    trainer.train_epoch(0)
    sync()
    sec = (clock() - t0) / len(trainer.train_loader)
    return sec, (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60, help="training steps per timed block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1: stable ratios on a shared machine)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--stat", choices=("min", "median"), default="min",
                    help="per regime over the repeats: min (interference only ever adds time; timeit's choice) or median")
    ap.add_argument("--clock", choices=("auto", "wall", "thread"), default="auto",
                    help="thread: CPU time of the training thread (1 CPU thread: every kernel runs in it, and time "
                         "the OS gives to other processes does not count); auto: thread on a 1-thread CPU run")
    add_out(ap, "hyperflows", "json,md")
    args = ap.parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True
    dev_name = device_name(device)
    use_thread = args.clock == "thread" or (args.clock == "auto" and device.type == "cpu" and torch.get_num_threads() == 1)
    clock, clock_name = (time.thread_time, "CPU time of the training thread") if use_thread else \
        (time.perf_counter, "wall clock")
    rows = []
    for name in args.models.split(","):
        c, s, k = GEOMETRY[name]
        g = torch.Generator().manual_seed(0)
        batches = [(torch.randn(args.batch_size, c, s, s, generator=g).to(device),
                    torch.randint(0, k, (args.batch_size,), generator=g).to(device)) for _ in range(args.steps)]
        trainers = {r: build_trainer(name, r, batches, device) for r in REGIMES}
        for r in REGIMES:                      # warm-up pass (allocations, cudnn autotune, Adam state)
            time_block(trainers[r], device, clock)
        times = {r: [] for r in REGIMES}
        peaks = {r: [] for r in REGIMES}
        for _ in range(args.repeats):
            for r in REGIMES:
                sec, peak = time_block(trainers[r], device, clock)
                times[r].append(sec)
                peaks[r].append(peak)
        stat = min if args.stat == "min" else statistics.median
        dense_t = stat(times["dense"])
        dense_mem = peaks["dense"][0] if device.type == "cuda" else state_bytes(trainers["dense"])
        floor_t = stat(times["floor"])
        for r in REGIMES:
            t = stat(times[r])
            mem = None if r == "floor" else max(peaks[r]) if device.type == "cuda" else state_bytes(trainers[r])
            rows.append({"model": name, "regime": r, "batch_size": args.batch_size, "ms_per_step": 1e3 * t,
                         "step_time_vs_dense": t / dense_t, "step_time_vs_floor": t / floor_t, "memory_bytes": mem,
                         "memory_vs_dense": None if mem is None else mem / dense_mem,
                         "memory_kind": "cuda peak allocated" if device.type == "cuda" else "training state",
                         "device": dev_name, "times_ms": [1e3 * x for x in times[r]]})
            print(f"{name:14s} {r:20s} {1e3 * t:8.2f} ms/step  x{t / dense_t:.3f} time  x{t / floor_t:.3f} of floor"
                  + ("" if mem is None else f"  x{mem / dense_mem:.2f} memory"), flush=True)
    out = out_stem(args.out, "hyperflows")
    out.with_suffix(".json").write_text(json.dumps({"device": dev_name, "torch": torch.__version__, "clock": clock_name,
                                                    "steps": args.steps, "repeats": args.repeats, "rows": rows}, indent=1))
    lines = [f"# Hyperflows step time and memory vs dense ({dev_name}, torch {torch.__version__})", "",
             f"{args.steps} steps per block, {args.repeats} alternating repeats, {args.stat}; {clock_name}.", "",
             "floor: dense + the 12 streams of N floats per weight tensor that any flow step moves (this machine's "
             "limit for a fused step).", "",
             "| model | regime | ms/step | time ÷ dense | time ÷ floor | memory ÷ dense | memory kind |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['regime']} | {r['ms_per_step']:.2f} | {r['step_time_vs_dense']:.3f} | "
              f"{r['step_time_vs_floor']:.3f} | "
              + ("– | – |" if r["memory_bytes"] is None else f"{r['memory_vs_dense']:.2f} | {r['memory_kind']} |")
              for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
