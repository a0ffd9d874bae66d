"""Trainer overhead: epoch time of ``experiments.train.Trainer`` ÷ a minimal hand-written PyTorch loop.

Both train the same LeNet-300-100 on the same in-memory Fashion-MNIST loader with the same SGD
optimizer, on the CPU, in this one process; epochs alternate (loop, trainer, loop, trainer, ...) so
drift in machine load hits both. Reported: median epoch seconds of each and their ratio (goal ≤ 1.10).

    flowprune bench trainer [--epochs 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from experiments.data import create_dataset
from experiments.measure import device_name
from experiments.models import create_model
from experiments.train import Trainer, create_schedule
from flowprune.bench import add_out, out_stem

OPT = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}


def hand_written_epoch(model, loader, opt) -> float:
    t0 = time.perf_counter()
    model.train()
    for x, y in loader:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", default="data")
    add_out(ap, "trainer", "json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = create_dataset("fashion_mnist", root=args.data_root, val_size=5000)

    torch.manual_seed(0)
    ref_model = create_model("lenet300", 10, 1, 28)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    ref_loader = data.loader("train", 128, train=True)

    torch.manual_seed(0)
    model = create_model("lenet300", 10, 1, 28)
    trainer = Trainer(model, data.loader("train", 128, train=True), {}, create_schedule(args.epochs + 1, 0.05),
                      OPT, progress=True, phase="bench")
    hand_written_epoch(ref_model, ref_loader, ref_opt)  # warm-up both
    trainer.train_epoch(0)
    loop_times, trainer_times = [], []
    for e in range(args.epochs):
        loop_times.append(hand_written_epoch(ref_model, ref_loader, ref_opt))
        t0 = time.perf_counter()
        trainer.set_lr(e)
        trainer.train_epoch(e + 1)
        trainer_times.append(time.perf_counter() - t0)
    loop_s, trainer_s = statistics.median(loop_times), statistics.median(trainer_times)
    out = {"model": "lenet300", "dataset": "fashion_mnist", "device": device_name(), "threads": args.threads,
           "epochs": args.epochs, "hand_written_epoch_s": loop_s, "trainer_epoch_s": trainer_s,
           "ratio": trainer_s / loop_s, "loop_times": loop_times, "trainer_times": trainer_times}
    path = out_stem(args.out, "trainer").with_suffix(".json")
    path.write_text(json.dumps(out, indent=2))
    print(f"hand-written loop {loop_s:.2f} s/epoch | Trainer {trainer_s:.2f} s/epoch | "
          f"ratio {out['ratio']:.3f} (goal <= 1.10) -> {path}")


if __name__ == "__main__":
    main()
