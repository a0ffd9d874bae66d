"""method=structured through the real pipeline on tiny settings."""
import pytest
import torch

from conftest import TINY, compose_cfg
from experiments.checkpoint import load_model
from experiments.pipeline import run


@pytest.mark.slow
def test_structured_macs_target_iterative_and_reload(tmp_path):
    cfg = compose_cfg(TINY + ["method=structured", "model=resnet8", "scorer=agf", "sparsity.target=0.5",
                              "method.target_kind=macs", "method.iterative_steps=2", "method.calibration.batches=2",
                              "method.calibration.batch_size=32"], tmp_path)
    rec = run(cfg)
    m = rec["metrics"]
    assert rec["status"] == "ok" and m["calibration_batches"] == 2
    assert 1.0 - m["macs_effective"] / m["dense_macs"] >= 0.5 - 1e-6      # MAC target reached
    curve = m["curve_test_acc"]                                        # one value per fine-tune epoch
    assert m["test_acc"] == curve[-1] and m["test_acc_best"] == max(curve)
    assert (m["acc_after_prune"] * 512 / 100) == pytest.approx(round(m["acc_after_prune"] * 512 / 100))  # k/512
    model, _ = load_model(rec["checkpoints"]["final"])
    widths = {n: mod.out_channels for n, mod in model.named_modules() if n.endswith("0.conv1")}
    assert widths == m["kept_channels"] and all(w < d for w, d in zip(widths.values(), (16, 32, 64)))
    scores = torch.load(m["scores_file"], weights_only=True)
    assert {"agf", "wanda", "ria", "taylor", "random"} <= set(scores["scorers"])


@pytest.mark.slow
def test_structured_vit_from_scratch_and_signal(tmp_path, caplog):
    cfg = compose_cfg(TINY + ["method=structured", "model=vit_micro", "scorer=wanda", "sparsity=\"75\"",
                              "method.from_scratch=true", "method.signal_batches=1", "method.calibration.batches=20",
                              "method.calibration.batch_size=32", "method.save_scores=false"], tmp_path)
    rec = run(cfg)
    m = rec["metrics"]
    assert m["kept_channels"] == {f"blocks.{i}.mlp.fc1": 64 for i in range(4)} and m["from_scratch"]
    for k in ("signal_dense_p99_p1", "signal_pruned_max_min", "auroc_wrong_confidence", "auroc_wrong_signal"):
        assert k in m
    assert m["signal_dense_max_min"] >= m["signal_dense_p99_p1"] >= 1.0
    # T = 20 batches of 32 asked from a 512-image train split: 16 exist; recorded and warned about
    assert m["calibration_batches"] == 512 // 32
    assert any("calibration: 20 batches of 32 asked" in r.getMessage() for r in caplog.records)
