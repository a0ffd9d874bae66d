"""ONNX export: the exported pruned model computes what the PyTorch one does, with the channels removed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY, compose_cfg

pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from experiments.checkpoint import load_model  # noqa: E402
from experiments.export import ExportMismatch, export_onnx  # noqa: E402
from experiments.pipeline import run  # noqa: E402


@pytest.fixture(scope="module")
def agf_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    rec = run(compose_cfg(TINY + ["model=lenet5", "method=structured", "scorer=agf", "sparsity.target=0.5",
                                  "save_checkpoints=true", "measure.export=onnx"], tmp))
    assert rec["status"] == "ok"
    return rec, tmp


def test_a_run_exports_its_pruned_model_and_onnx_runtime_agrees(agf_run):
    rec, _ = agf_run
    m = rec["metrics"]
    assert m["export_max_abs_diff"] <= 1e-4
    model, _ = load_model(rec["checkpoints"]["final"])
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(7))   # not the batch the export checked
    session = ort.InferenceSession(m["export_onnx"], providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - model.eval()(x).numpy()).max() <= 1e-4
    # channels physically removed: the graph's weights have the pruned widths
    shapes = sorted(tuple(i.dims) for i in onnx.load(m["export_onnx"]).graph.initializer if len(i.dims) == 4)
    assert shapes == sorted(tuple(p.shape) for p in model.parameters() if p.dim() == 4)
    assert model.conv2.out_channels == m["kept_channels"]["conv2"] < 16


def test_flowprune_export_writes_a_runs_model_and_refuses_an_unknown_run(agf_run, tmp_path, capsys):
    from flowprune.export import main

    rec, results = agf_run
    out = tmp_path / "m.onnx"
    assert main([rec["run_id"], "--results-dir", str(results), "--out", str(out)]) == 0
    assert out.is_file() and "max |diff|" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["no-such-run", "--results-dir", str(results)])
    assert exc.value.code == 2 and "no-such-run" in capsys.readouterr().err


def test_a_difference_beyond_the_tolerance_is_an_error(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    out = export_onnx(model, torch.zeros(1, 1, 2, 2), tmp_path / "ok.onnx")
    assert out["max_abs_diff"] <= 1e-6
    with pytest.raises(ExportMismatch, match="differ"):
        export_onnx(model, torch.zeros(1, 1, 2, 2), tmp_path / "bad.onnx", atol=-1.0)
