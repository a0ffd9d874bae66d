"""``flowprune bench hyperflows``: the floor regime adds memory traffic, not arithmetic; the tables carry it."""
from __future__ import annotations

import json

import torch

from flowprune.bench import hyperflows as bench


def batches(n: int = 3) -> list:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(n)]


def test_floor_regime_trains_exactly_as_dense():
    data, cpu = batches(), torch.device("cpu")
    dense, floor = bench.build_trainer("lenet300", "dense", data, cpu), bench.build_trainer("lenet300", "floor", data, cpu)
    for trainer in (dense, floor):
        bench.time_block(trainer, cpu)
    for (name, a), b in zip(dense.model.state_dict().items(), floor.model.state_dict().values()):
        assert torch.equal(a, b), name
    layers = [m for m in floor.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert [len(b) for b in floor.callbacks[0].buffers] == [4] * len(layers)


def test_bench_writes_every_regime_with_its_ratio_to_the_floor(tmp_path):
    bench.main(["--models", "lenet300", "--steps", "2", "--repeats", "1", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "bench" / "bench_hyperflows.json").read_text())["rows"]
    assert [r["regime"] for r in rows] == list(bench.REGIMES)
    by = {r["regime"]: r for r in rows}
    assert by["floor"]["step_time_vs_floor"] == 1.0 and by["dense"]["step_time_vs_dense"] == 1.0
    for r in rows:
        assert abs(r["step_time_vs_floor"] - r["ms_per_step"] / by["floor"]["ms_per_step"]) < 1e-9
    assert by["floor"]["memory_bytes"] is None
    md = (tmp_path / "bench" / "bench_hyperflows.md").read_text()
    assert "time ÷ floor" in md and "| lenet300 | floor |" in md
