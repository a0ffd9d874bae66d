"""Benchmarks for AGF structural pruning, both ratios measured in one process (not a test).

1. Calibration overhead: time of the AGF calibration pass (T batches, forward + backward with hooks feeding
   every scorer) ÷ time of T plain training steps (forward + backward + SGD step) on the same batches.
   Target ≤ 1.3.
2. Physical-removal payoff: CPU latency speed-up of the 75 %-pruned proxy ResNet ÷ its MAC reduction at
   batch 64. Target ≥ 0.6. (``--device cuda`` measures it on a GPU.)

    OMP_NUM_THREADS=1 python scripts/bench_agf.py [--model resnet8] [--threads 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agf.calibration import Calibrator  # noqa: E402
from agf.removal import remove_channels  # noqa: E402
from agf.scorers import create_scorer  # noqa: E402
from agf.selection import select_keep  # noqa: E402
from agf.units import find_units  # noqa: E402
from experiments.measure import count_macs  # noqa: E402
from experiments.models import create_model  # noqa: E402


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


@torch.inference_mode()
def latency(model, x, repeats: int) -> float:
    model.eval()
    for _ in range(3):
        model(x)
    times = []
    for _ in range(repeats):
        sync(x.device)
        t0 = time.perf_counter()
        model(x)
        sync(x.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--in-channels", type=int, default=1)
    ap.add_argument("--batches", type=int, default=10, help="T")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--sparsity", type=float, default=0.75)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latency-repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the result JSON here too")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    kw = {"width": args.width} if args.model.startswith("resnet") else {}
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
    p_units = find_units(pruned, example)
    remove_channels(pruned, example, p_units,
                    select_keep({u.name: sc.unit_scores(u) for u in units}, args.sparsity))
    macs_d = count_macs(model, example)["macs_dense"]
    macs_p = count_macs(pruned, example)["macs_dense"]
    x64 = torch.randn(64, *shape[1:], device=device)
    lat_d, lat_p = [], []
    for _ in range(3):                                       # alternate dense / pruned
        lat_d.append(latency(model, x64, args.latency_repeats))
        lat_p.append(latency(pruned, x64, args.latency_repeats))
    ld, lp = statistics.median(lat_d), statistics.median(lat_p)
    res = {"model": args.model, "width": args.width, "device": str(device), "threads": torch.get_num_threads(),
           "T": args.batches, "batch_size": args.batch_size,
           "calibration_s": t_cal, "train_steps_s": t_train, "calibration_over_train": t_cal / t_train,
           "macs_dense": macs_d, "macs_pruned": macs_p, "mac_reduction": macs_d / macs_p,
           "latency_ms_bs64_dense": ld, "latency_ms_bs64_pruned": lp, "speedup": ld / lp,
           "speedup_over_mac_reduction": (ld / lp) / (macs_d / macs_p)}
    res["pass_calibration_le_1.3"] = res["calibration_over_train"] <= 1.3
    res["pass_speedup_ratio_ge_0.6"] = res["speedup_over_mac_reduction"] >= 0.6
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
