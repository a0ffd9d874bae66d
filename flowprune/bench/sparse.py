"""Benchmark: where real sparse inference (CSR Linear) beats the dense kernels, measured in one process (not a test).

For each Linear shape of LeNet-300-100 (784→300, 300→100) and each unstructured sparsity and batch size, the
same layer is timed dense (``F.linear``: what a finalized unstructured model runs) and as CSR
(:class:`experiments.sparsity.sparse_inference.SparseLinear`), in alternation, best of three medians each; then the
whole LeNet-300 at each sparsity, dense vs :func:`~experiments.sparsity.sparse_inference.sparsify` (CSR only where a
layer measured faster).

    OMP_NUM_THREADS=1 flowprune bench sparse [--sparsities 0.5,0.8,0.9,0.95,0.98,0.99] [--batches 1,16,64,256]
writes results/bench/bench_sparse.{json,md}
"""
from __future__ import annotations

import argparse
import copy
import json

import pandas as pd
import torch
from torch import nn

from experiments.measure import device_name, latency_ms
from experiments.models import create_model
from experiments.sparsity.sparse_inference import sparsify, time_linear
from flowprune.bench import add_out, out_stem
from flowprune.reports.common import markdown

SHAPES = ((784, 300), (300, 100))


def random_sparse_(weight: torch.Tensor, sparsity: float, generator: torch.Generator) -> torch.Tensor:
    """Zero the fraction ``sparsity`` of ``weight`` at random positions (unstructured), in place."""
    with torch.no_grad():
        weight[torch.rand(weight.shape, generator=generator) < sparsity] = 0.0
    return weight


def layer_rows(sparsities, batches, repeats, g) -> list[dict]:
    rows = []
    for n_in, n_out in SHAPES:
        for s in sparsities:
            layer = nn.Linear(n_in, n_out)
            random_sparse_(layer.weight, s, g)
            for b in batches:
                d, c = time_linear(layer, torch.randn(b, n_in, generator=g), repeats)
                rows.append({"layer": f"{n_in}x{n_out}", "sparsity": s, "batch": b, "dense_ms": d, "csr_ms": c,
                             "speedup": d / c})
    return rows


def model_rows(sparsities, batches, repeats, g) -> list[dict]:
    rows = []
    for s in sparsities:
        dense = create_model("lenet300", num_classes=10, in_channels=1, image_size=28).eval()
        for m in dense.modules():
            if isinstance(m, nn.Linear):
                random_sparse_(m.weight, s, g)
        for b in batches:
            x = torch.randn(b, 1, 28, 28, generator=g)
            fast, report = sparsify(copy.deepcopy(dense), x, repeats=repeats)
            with torch.inference_mode():
                assert torch.allclose(fast(x), dense(x), atol=1e-4)
                d = min(latency_ms(dense, x, repeats) for _ in range(3))
                f = min(latency_ms(fast, x, repeats) for _ in range(3))
            rows.append({"model": "lenet300", "sparsity": s, "batch": b, "csr_layers": sum(r["sparse"] for r in
                         report.values()), "dense_ms": d, "sparsified_ms": f, "speedup": d / f})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98,0.99")
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    add_out(ap, "sparse", "json,md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sparsities = [float(x) for x in args.sparsities.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    g = torch.Generator().manual_seed(0)
    layers, models = layer_rows(sparsities, batches, args.repeats, g), model_rows(sparsities, batches, args.repeats, g)
    wide = pd.DataFrame(layers).pivot_table(index=["layer", "sparsity"], columns="batch", values="speedup")
    wide.columns = [f"bs{b}" for b in wide.columns]
    mwide = pd.DataFrame(models).pivot_table(index="sparsity", columns="batch", values="speedup")
    mwide.columns = [f"bs{b}" for b in mwide.columns]
    note = (f"flowprune bench sparse on {device_name()} (torch {torch.__version__}): speed-up of "
            "CSR over dense (> 1: CSR faster), per Linear layer and sparsity (random unstructured zeros), per batch "
            "size; dense and CSR alternate in one process, best of 3 medians.")
    out = out_stem(args.out, "sparse")
    out.with_suffix(".json").write_text(json.dumps({"layers": layers, "models": models}, indent=1))
    out.with_suffix(".md").write_text(note + "\n\nPer layer:\n\n" + markdown(wide.round(2).reset_index()) +
                                      "\n\nWhole LeNet-300 (`sparsify`: CSR only where a layer measured >= 1.1x):\n\n"
                                      + markdown(mwide.round(2).reset_index()) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
