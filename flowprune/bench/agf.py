"""Benchmarks for AGF structural pruning, both ratios measured in one process (not a test).

1. Calibration overhead: time of the AGF calibration pass (T batches, forward + backward with hooks feeding
   every scorer) ÷ time of T plain training steps (forward + backward + SGD step) on the same batches.
   Target ≤ 1.3.
2. Physical-removal payoff: measured speed-up of the 75 %-pruned proxy ResNet over the dense one at batch
   1/16/64/256, each in its fastest faithful form (eager, deploy = BN folded + channels-last, TorchScript-frozen,
   ONNX Runtime; the form named), ÷ its padded-MAC reduction (output widths rounded up to the kernels' channel
   block). Goal at batch 64: ≥ 0.8 of the padded-MAC reduction, and ≥ 2.0× absolute at width 1.
   (``--device cuda`` measures it on a GPU.)

    OMP_NUM_THREADS=1 flowprune bench agf [--widths 1,2] [--threads 1] [--device cpu] [--forms eager,deploy]
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
from experiments.errors import ConfigError
from experiments.measure import FORMS, channel_block, count_macs, device_name, padded_macs, speedups
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
                    select_keep({u.name: sc.unit_scores(u) for u in units}, args.sparsity, round_to=args.round_to))
    macs_d = count_macs(model, example)["macs_dense"]
    macs_p = count_macs(pruned, example)["macs_dense"]
    padded = padded_macs(model, example, args.channel_block) / padded_macs(pruned, example, args.channel_block)
    res = {"model": args.model, "width": width, "device": device_name(device), "threads": torch.get_num_threads(),
           "T": args.batches, "batch_size": args.batch_size,
           "calibration_s": t_cal, "train_steps_s": t_train, "calibration_over_train": t_cal / t_train,
           "macs_dense": macs_d, "macs_pruned": macs_p, "mac_reduction": macs_d / macs_p,
           "padded_mac_reduction": padded}
    # what a run records (experiments.measure.speedups): each model in its fastest faithful form, dense and pruned
    # alternating `rounds` times, best median each
    examples = {b: torch.randn(b, *shape[1:], device=device) for b in args.speedup_batches}
    sp = speedups(model.eval(), pruned.eval(), examples, repeats=args.latency_repeats, rounds=args.rounds,
                  forms=args.forms)
    for b in args.speedup_batches:
        res.update({f"speedup_bs{b}": sp[f"speedup_bs{b}"], f"form_bs{b}": sp[f"speedup_form_bs{b}"],
                    f"latency_ms_bs{b}_dense": sp[f"dense_latency_best_ms_bs{b}"],
                    f"latency_ms_bs{b}_pruned": sp[f"latency_best_ms_bs{b}"],
                    f"speedup_over_padded_bs{b}": sp[f"speedup_bs{b}"] / padded,
                    f"speedup_over_macs_bs{b}": sp[f"speedup_bs{b}"] * macs_p / macs_d})
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
    ap.add_argument("--latency-repeats", type=int, default=10, help="timed forwards per latency sample (median)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating dense/pruned latency samples (best median)")
    ap.add_argument("--batches-timed", dest="speedup_batches", default="1,16,64,256",
                    help="comma-separated batch sizes of the speed-ups")
    ap.add_argument("--forms", default=",".join(FORMS), help=f"comma-separated timing forms of {FORMS}")
    ap.add_argument("--round-to", default="1", help="kept widths rounded to a multiple of this (auto: the CPU "
                    "conv kernels' channel block)")
    ap.add_argument("--channel-block", default="auto", help="output widths padded to this (padded MACs; auto: 16 "
                    "with AVX-512, 8 with AVX2)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--device", default="cpu")
    add_out(ap, "agf", "json,md")
    args = ap.parse_args(argv)
    args.speedup_batches = [int(b) for b in args.speedup_batches.split(",")]
    args.forms = [f for f in args.forms.split(",") if f]
    try:
        args.round_to = channel_block(args.round_to, "--round-to")
        args.channel_block = channel_block(args.channel_block, "--channel-block")
    except ConfigError as e:
        ap.error(str(e))
    if bad := [f for f in args.forms if f not in FORMS]:
        ap.error(f"--forms: {bad} not in {FORMS}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for w in (float(x) for x in args.widths.split(",")):
        rows.append(bench(args, w, device))
        print(json.dumps(rows[-1], indent=1))
    df = pd.DataFrame(rows)
    cols = ["model", "width", "threads", "calibration_over_train", "mac_reduction", "padded_mac_reduction"]
    speed = ["width", "batch", "dense ms", "pruned ms", "speed-up", "÷ padded MACs", "÷ MACs", "forms (pruned vs dense)"]
    per_batch = pd.DataFrame([[r["width"], b, r[f"latency_ms_bs{b}_dense"], r[f"latency_ms_bs{b}_pruned"],
                               r[f"speedup_bs{b}"], r[f"speedup_over_padded_bs{b}"], r[f"speedup_over_macs_bs{b}"],
                               r[f"form_bs{b}"]] for r in rows for b in args.speedup_batches], columns=speed)
    goal = ["at batch 64, width %g: speed-up %.2fx (goal >= 2.0x at width 1), %.2f of the padded-MAC reduction "
            "(goal >= 0.8): %s" % (r["width"], r["speedup_bs64"], r["speedup_over_padded_bs64"],
                                   "met" if r["speedup_over_padded_bs64"] >= 0.8
                                   and (r["width"] != 1 or r["speedup_bs64"] >= 2.0) else "NOT met")
            for r in rows if "speedup_bs64" in r]
    note = (f"flowprune bench agf on {device_name(device)} (torch {torch.__version__}), "
            f"{args.image_size}x{args.image_size}x{args.in_channels}, {args.sparsity:.0%} of internal channels removed "
            f"(AGF scores). Calibration target: calibration_over_train <= 1.3. Speed-ups as a run records them "
            f"(experiments.measure.speedups): each model in its fastest faithful form of {args.forms}, dense and "
            f"pruned alternating {args.rounds} rounds of {args.latency_repeats} timed forwards, best median each. "
            f"Padded MACs: output widths rounded up to {args.channel_block}.")
    out = out_stem(args.out, "agf")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    out.with_suffix(".md").write_text(note + "\n\n" + markdown(df[cols]) + "\n\n" + markdown(per_batch) + "\n\n"
                                      + "\n".join(f"- {g}" for g in goal) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
