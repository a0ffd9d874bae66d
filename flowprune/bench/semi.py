"""Benchmark: 2:4 semi-structured sparse Linear layers (a GPU's sparse tensor cores) vs dense, on CUDA (not a test).

For each Linear shape and batch size, a weight masked 2:4 as ``method.pattern=2:4`` masks it (the 2 largest |w| of
every 4 along the input dim, :func:`experiments.sparsity.n_of_m.keep_n_of_m`) runs dense (``F.linear``) and as
``torch.sparse.to_sparse_semi_structured`` (cuSPARSELt or CUTLASS, whichever torch picks) in half precision, timed
with CUDA events in alternation, best of 3 medians each; the two outputs are compared. A cell the sparse kernels
refuse (shape, dtype, GPU) records the error instead of a time. This is the measurement that decides whether the
2:4 masks of ``method.pattern`` buy speed on a GPU; on a CPU they do not (``flowprune bench sparse``).

    flowprune bench semi [--dtype float16|bfloat16] [--batches 1,16,64,256,1024]
writes <out>/bench/bench_semi.{json,md}
"""
from __future__ import annotations

import argparse
import json
import statistics

import pandas as pd
import torch
import torch.nn.functional as F

from experiments.measure import device_name
from experiments.sparsity.n_of_m import keep_n_of_m
from flowprune.bench import add_out, out_stem
from flowprune.reports.common import markdown

#: (in, out): LeNet-300's layers, a ViT-B MLP pair, ResNet-50's classifier, a large square layer
SHAPES = ((784, 300), (300, 100), (768, 3072), (3072, 768), (2048, 1000), (4096, 4096))
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def cuda_ms(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` by CUDA events, after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cell(n_in: int, n_out: int, batch: int, dtype: torch.dtype, repeats: int, g: torch.Generator) -> dict:
    """One (shape, batch): dense and 2:4 times, their ratio and the outputs' largest difference, or the error."""
    from torch.sparse import to_sparse_semi_structured

    row = {"layer": f"{n_in}x{n_out}", "batch": batch}
    w = torch.randn(n_out, n_in, generator=g)
    w = (w * keep_n_of_m(w.abs(), 2, 4)).to("cuda", dtype)
    x = torch.randn(batch, n_in, generator=g).to("cuda", dtype)
    try:
        ws = to_sparse_semi_structured(w)
        with torch.inference_mode():
            ref, out = F.linear(x, w), F.linear(x, ws)
            dense, sparse = [], []
            for _ in range(3):
                dense.append(cuda_ms(lambda: F.linear(x, w), repeats))
                sparse.append(cuda_ms(lambda: F.linear(x, ws), repeats))
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        return {**row, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    d, s = min(dense), min(sparse)
    return {**row, "dense_ms": d, "semi_ms": s, "speedup": d / s,
            "max_abs_diff": float((out.float() - ref.float()).abs().max()),
            "ref_max_abs": float(ref.float().abs().max())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="float16")
    ap.add_argument("--batches", default="1,16,64,256,1024")
    ap.add_argument("--repeats", type=int, default=50)
    add_out(ap, "semi", "json,md")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 8:
        raise SystemExit("error: flowprune bench semi needs a CUDA GPU of compute capability >= 8.0 (Ampere or later: "
                         "2:4 sparsity runs on its sparse tensor cores); on a CPU use flowprune bench sparse")
    g = torch.Generator().manual_seed(0)
    rows = [cell(n_in, n_out, b, DTYPES[args.dtype], args.repeats, g)
            for n_in, n_out in SHAPES for b in (int(x) for x in args.batches.split(","))]
    df = pd.DataFrame(rows)
    timed = df[df["speedup"].notna()] if "speedup" in df else df.iloc[0:0]
    wide = (timed.pivot_table(index="layer", columns="batch", values="speedup", sort=False) if len(timed)
            else pd.DataFrame())
    wide.columns = [f"bs{b}" for b in wide.columns]
    errors = df[df["error"].notna()][["layer", "batch", "error"]] if "error" in df else df.iloc[0:0]
    note = (f"flowprune bench semi on {device_name(torch.device('cuda'))} (torch {torch.__version__}, {args.dtype}): "
            "speed-up of a 2:4 semi-structured Linear (torch.sparse.to_sparse_semi_structured) over the dense one "
            "(> 1: sparse faster), per layer (in x out) and batch size; CUDA events, alternating, best of 3 medians.")
    out = out_stem(args.out, "semi")
    out.with_suffix(".json").write_text(json.dumps({"device": device_name(torch.device("cuda")), "dtype": args.dtype,
                                                    "torch": torch.__version__, "rows": rows}, indent=1))
    text = note + "\n\n" + markdown(wide.round(2).reset_index())
    if len(errors):
        text += "\n\nCells the sparse kernels refused:\n\n" + markdown(errors)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
