"""Benchmarks for AGF structural pruning, both ratios measured in one process (not a test).

1. Calibration overhead: time of the AGF calibration pass (T batches, forward + backward with hooks feeding
   every scorer) ÷ time of T plain training steps (forward + backward + SGD step) on the same batches.
   Target ≤ 1.3.
2. Physical-removal payoff: CPU latency speed-up of the 75 %-pruned proxy ResNet ÷ its MAC reduction at
   batch 64, eager NCHW and in the deployment form (BN folded, channels-last). Target ≥ 0.6.
   (``--device cuda`` measures it on a GPU.)

    OMP_NUM_THREADS=1 flowprune bench agf [--widths 1,2,4] [--threads 1] [--device cpu]
writes results/bench/bench_agf.{json,md}
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import pandas as pd
import torch
import torch.nn.functional as F

from agf.calibration import Calibrator
from agf.scorers import create_scorer
from experiments.measure import count_macs, inference_copy, latency_ms, padded_macs
from experiments.models import create_model
from experiments.sparsity.removal import remove_channels
from experiments.sparsity.selection import select_keep
from experiments.sparsity.units import find_units
from flowprune.bench import add_out, out_stem
from flowprune.reports.common import markdown


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_train_steps(model, batches, device) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)
    model.train()
    sync(device)
    t0 = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def time_calibration(model, units, batches, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    Calibrator(model, units).run(batches)
    sync(device)
    return time.perf_counter() - t0


def bench(args, width: float, device: torch.device) -> dict:
    """Both ratios for one model width (fresh random weights, seed 0)."""
    torch.manual_seed(0)
    kw = {"width": width} if args.model.startswith("resnet") else {}
    model = create_model(args.model, num_classes=10, in_channels=args.in_channels, image_size=args.image_size,
                         **kw).to(device)
    shape = (args.batch_size, args.in_channels, args.image_size, args.image_size)
    batches = [(torch.randn(shape, device=device), torch.randint(0, 10, (args.batch_size,), device=device))
               for _ in range(args.batches)]
    example = torch.zeros(1, *shape[1:], device=device)
    units = find_units(model, example)

    # 1. calibration ÷ plain training steps, alternating to share machine noise
    train_model = copy.deepcopy(model)
    time_train_steps(train_model, batches[:2], device)       # warm-up
    time_calibration(model, units, batches[:2], device)
    cal, train = [], []
    for _ in range(args.repeats):
        train.append(time_train_steps(train_model, batches, device))
        cal.append(time_calibration(model, units, batches, device))
    t_cal, t_train = statistics.median(cal), statistics.median(train)

    # 2. physically pruned latency ÷ MAC reduction at batch 64
    stats = Calibrator(model, units).run(batches[:2])
    sc = create_scorer("agf").bind(units, stats)
    pruned = copy.deepcopy(model)
    remove_channels(pruned, example, find_units(pruned, example),
                    select_keep({u.name: sc.unit_scores(u) for u in units}, args.sparsity))
    macs_d = count_macs(model, example)["macs_dense"]
    macs_p = count_macs(pruned, example)["macs_dense"]
    x64 = torch.randn(64, *shape[1:], device=device)
    # two forms, both models alike: eager NCHW (what the pipeline's measure stage records) and the deployment
    # form (BN folded into the convs, channels-last); dense / pruned alternate to share machine noise
    forms = {"eager": (model.eval(), pruned.eval(), x64),
             "deploy": (inference_copy(model), inference_copy(pruned), x64.contiguous(memory_format=torch.channels_last))}
    lat = {(f, k): [] for f in forms for k in ("dense", "pruned")}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for f, (dense_net, pruned_net, x) in forms.items():
                lat[f, "dense"].append(latency_ms(dense_net, x, repeats=args.latency_repeats))
                lat[f, "pruned"].append(latency_ms(pruned_net, x, repeats=args.latency_repeats))
    res = {"model": args.model, "width": width, "device": str(device), "threads": torch.get_num_threads(),
           "T": args.batches, "batch_size": args.batch_size,
           "calibration_s": t_cal, "train_steps_s": t_train, "calibration_over_train": t_cal / t_train,
           "macs_dense": macs_d, "macs_pruned": macs_p, "mac_reduction": macs_d / macs_p,
           "padded_mac_reduction": padded_macs(model, example) / padded_macs(pruned, example)}
    for f in forms:
        ld, lp = statistics.median(lat[f, "dense"]), statistics.median(lat[f, "pruned"])
        res.update({f"latency_ms_bs64_dense_{f}": ld, f"latency_ms_bs64_pruned_{f}": lp, f"speedup_{f}": ld / lp,
                    f"speedup_over_mac_reduction_{f}": (ld / lp) / (macs_d / macs_p),
                    f"speedup_over_padded_mac_reduction_{f}": (ld / lp) / res["padded_mac_reduction"]})
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--widths", default="1", help="comma-separated width multipliers (resnet models)")
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--in-channels", type=int, default=1)
    ap.add_argument("--batches", type=int, default=10, help="T")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--sparsity", type=float, default=0.75)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latency-repeats", type=int, default=10, help="timed forwards per latency sample")
    ap.add_argument("--rounds", type=int, default=9, help="alternating dense/pruned latency samples (median)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--device", default="cpu")
    add_out(ap, "agf", "json,md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for w in (float(x) for x in args.widths.split(",")):
        rows.append(bench(args, w, device))
        print(json.dumps(rows[-1], indent=1))
    df = pd.DataFrame(rows)
    cols = ["model", "width", "threads", "T", "calibration_over_train", "mac_reduction", "padded_mac_reduction",
            "latency_ms_bs64_dense_eager", "latency_ms_bs64_pruned_eager", "speedup_over_mac_reduction_eager",
            "latency_ms_bs64_dense_deploy", "latency_ms_bs64_pruned_deploy", "speedup_over_mac_reduction_deploy",
            "speedup_over_padded_mac_reduction_deploy"]
    note = (f"flowprune bench agf on {device} (torch {torch.__version__}), batch 64, "
            f"{args.image_size}x{args.image_size}x{args.in_channels}, {args.sparsity:.0%} of internal channels removed "
            f"(AGF scores). Targets: calibration_over_train <= 1.3, speedup_over_mac_reduction >= 0.6. eager = NCHW "
            "as a run records it; deploy = BN folded + channels-last (experiments.measure.inference_copy). "
            "Dense and pruned alternate within one process.")
    out = out_stem(args.out, "agf")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    out.with_suffix(".md").write_text(note + "\n\n" + markdown(df[cols]) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
