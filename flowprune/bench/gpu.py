"""Training throughput (images/s) of dense vs Hyperflows-style vs masked training, one process.

Each regime trains the same registry model on batches already resident on the device, with the
trainer's fast-path options (bf16 autocast and channels_last on CUDA, optional ``torch.compile``):

- ``dense``: plain SGD training (the dense baseline and fine-tuning of physically pruned models);
- ``masked``: ``experiments.sparsity.masks.BinaryMask`` on every conv/linear weight (what GMP, RigL, GraNet,
  magnitude and SNIP cost per step, without their mask updates);
- ``hyperflows``: ``experiments.sparsity.flow_mask.FlowMask`` on every weight, the pressure gradient and the (fused)
  Adam on t (Hyperflows §1-2). ``flowprune bench hyperflows`` times the full methods inside ``Trainer``. Regimes alternate within one process (dense, masked, hyperflows, dense, ...) and the
median of the repeats is reported, so machine drift hits all of them.

    flowprune bench gpu                 # paper-scale models on the GPU
    flowprune bench gpu --tiny          # CPU-sized smoke run (LeNet-300, ResNet-8)
    flowprune bench gpu --compile       # with torch.compile
Writes ``<out>/bench/bench_gpu.{md,csv}`` (``--out``, default results).
"""
from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import pandas as pd
import torch
import torch.nn.functional as F

from experiments.models import create_model
from experiments.sparsity.flow_mask import attach_flow_masks, flow_parameters
from experiments.sparsity.masks import BinaryMask, attach_masks, global_magnitude_masks, original_weights, set_masks
from flowprune.bench import add_out, out_stem
from hyperflows.method import adam
from hyperflows.pressure import add_pressure_grad_

#: (model, in_channels, image size, classes, batch size) at paper scale, and the CPU-sized set
PAPER = [("resnet56", 3, 32, 10, 128), ("vgg19_cifar", 3, 32, 100, 128), ("resnet50", 3, 224, 1000, 64)]
TINY = [("lenet300", 1, 28, 10, 32), ("resnet8", 3, 32, 10, 16)]
def build(name: str, regime: str, in_ch: int, size: int, classes: int, device: torch.device, channels_last: bool):
    """The model with the real mask machinery of ``hyperflows`` (BinaryMask at 10 % density / FlowMask)."""
    model = create_model(name, num_classes=classes, in_channels=in_ch, image_size=size).to(device)
    flows = []
    if regime == "masked":
        attach_masks(model, lambda n, layer: BinaryMask(layer.weight))
        set_masks(model, global_magnitude_masks(dict(original_weights(model)), 0.1))
    elif regime == "hyperflows":
        attach_flow_masks(model, seed=0)
        flows = list(flow_parameters(model).values())
    if channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    flow_ids = {id(t) for t in flows}
    weights = [p for p in model.parameters() if id(p) not in flow_ids]
    opts = [torch.optim.SGD(weights, lr=0.01, momentum=0.9, weight_decay=5e-4)]
    if flows:
        opts.append(adam(flows, 1e-3))
    return model, opts, flows


def time_steps(model, opts, flows, x, y, steps: int, warmup: int, amp: bool, compile_: bool) -> float:
    """Seconds per training step (forward, loss [+ pressure], backward, every optimizer's step)."""
    fwd = torch.compile(model) if compile_ else model
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if amp and x.device.type == "cuda" else nullcontext()

    def step():
        for o in opts:
            o.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(fwd(x).float(), y)
        loss.backward()
        if flows:
            add_pressure_grad_(flows, 0.5 ** 1.5)   # λ = γ^1.5, γ = 0.5, as the Hyperflows callback adds it
        for o in opts:
            o.step()

    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def markdown(df: pd.DataFrame) -> str:
    fmt = lambda v: f"{v:,.2f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU-sized models and batches")
    ap.add_argument("--models", default=None, help="comma list of registry names (default: paper set or tiny set)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (trainer.compile=true)")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--device", default="auto")
    add_out(ap, "gpu", "md,csv")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    tiny = args.tiny or device.type != "cuda"
    specs = TINY if tiny else PAPER
    if args.models:
        known = {s[0]: s for s in PAPER + TINY}
        specs = [known.get(m, (m, 3, 32, 10, 64)) for m in args.models.split(",")]
    steps = args.steps or (3 if tiny else 30)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        dev_name = torch.cuda.get_device_name(device)
    else:
        dev_name = "cpu"
        print("no GPU available: CPU run with tiny sizes; these are not GPU figures", flush=True)

    rows = []
    for name, in_ch, size, classes, bs in specs:
        bs = args.batch_size or bs
        torch.manual_seed(0)
        x = torch.randn(bs, in_ch, size, size, device=device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, classes, (bs,), device=device)
        built = {r: build(name, r, in_ch, size, classes, device, True) for r in ("dense", "masked", "hyperflows")}
        times = {r: [] for r in built}
        for _ in range(args.repeats):  # alternate the regimes
            for r, (model, opts, flows) in built.items():
                times[r].append(time_steps(model, opts, flows, x, y, steps, warmup=2 if tiny else 10,
                                           amp=not args.no_amp, compile_=args.compile))
        dense = statistics.median(times["dense"])
        for r, ts in times.items():
            sec = statistics.median(ts)
            rows.append({"model": name, "regime": r, "batch_size": bs, "image_size": size,
                         "images_per_s": bs / sec, "ms_per_step": 1e3 * sec, "vs_dense": dense / sec,
                         "device": dev_name, "amp_bf16": device.type == "cuda" and not args.no_amp,
                         "channels_last": device.type == "cuda", "compile": args.compile})
            print(f"{name:12s} {r:10s} bs {bs:4d}: {bs / sec:10.1f} img/s  ({dense / sec:.2f}x dense)", flush=True)
        del built
        if device.type == "cuda":
            torch.cuda.empty_cache()

    df = pd.DataFrame(rows)
    out = out_stem(args.out, "gpu")
    df.to_csv(out.with_suffix(".csv"), index=False)
    note = (f"Device: {dev_name}; torch {torch.__version__}; {steps} timed steps x {args.repeats} repeats (median)."
            + ("" if device.type == "cuda" else " No GPU was available: CPU, tiny sizes; not GPU figures."))
    out.with_suffix(".md").write_text(
        "# Training throughput: dense vs masked vs Hyperflows-style\n\n" + note + "\n\n"
        + markdown(df) + "\n")
    print(f"wrote {out.with_suffix('.md')} and .csv")


if __name__ == "__main__":
    main()
