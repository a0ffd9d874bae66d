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


def test_calibration_splits_are_disjoint_subsets_of_t_batches(tmp_path, monkeypatch):
    """method.calibration.splits=3: after the main calibration, three calibrations of T batches each, and no
    image is in two of them (one shuffled pass without replacement)."""
    from agf.calibration import Calibrator

    seen, run_ = [], Calibrator.run

    def recording_run(self, batches):
        batches = list(batches)
        seen.append([x.clone() for x, _ in batches])
        return run_(self, batches)
    monkeypatch.setattr(Calibrator, "run", recording_run)
    cfg = compose_cfg(TINY + ["method=structured", "model=resnet8", "scorer=l1", "sparsity.target=0.5",
                              "method.calibration.batches=2", "method.calibration.batch_size=16",
                              "method.calibration.splits=3", "stages=[calibrate,prune,evaluate]"], tmp_path)
    assert run(cfg)["status"] == "ok"
    splits = seen[-3:]
    assert [len(s) for s in splits] == [2, 2, 2] and all(x.shape[0] == 16 for s in splits for x in s)
    rows = [torch.cat(s).flatten(1) for s in splits]
    for i in range(3):
        for j in range(i + 1, 3):   # pairwise: no image of subset i equals one of subset j
            assert not (torch.cdist(rows[i], rows[j]) == 0).any(), (i, j)


def test_global_ranking_keeps_the_global_top_k_of_mean_normalised_l1(tmp_path):
    """method.global_ranking=true on ResNet-8: the kept widths equal a brute-force global top-k over every
    block's filter L1 norms, each divided by its layer's mean (normalize=mean), computed from the dense model."""
    cfg = compose_cfg(TINY + ["method=structured", "model=resnet8", "scorer=l1", "sparsity.target=0.5",
                              "method.global_ranking=true", "method.normalize=mean",
                              "stages=[pretrain,calibrate,prune,evaluate]"], tmp_path)
    rec = run(cfg)
    dense, _ = load_model(rec["checkpoints"]["dense"])
    scores = {}
    for name, mod in dense.named_modules():
        if name.endswith("conv1") and "." in name:   # the blocks' inner convs: the units without residual coupling
            s = mod.weight.detach().abs().sum(dim=(1, 2, 3))
            scores[name] = s / s.mean()
    flat = sorted(((float(v), n) for n, s in scores.items() for v in s), reverse=True)
    k = sum(round(len(s) * 0.5) for s in scores.values())
    expected = {n: sum(1 for _, m in flat[:k] if m == n) for n in scores}
    assert rec["metrics"]["kept_channels"] == expected
    assert len(set(expected.values())) > 1   # the layers really got different widths


def test_cost_target_of_the_first_step_is_the_asked_one_under_noisy_measurements(monkeypatch):
    """A measured cost (latency) differs between two measurements of the same model: the first step's target relative
    to the current model must still be the overall target (one measurement), later steps 1 − (1 − T)·dense/now."""
    from types import SimpleNamespace

    from agf.method import StructuredPruning
    from experiments.sparsity import removal

    measured = iter([10.0, 12.5])   # the dense model, then the model after step 1
    monkeypatch.setattr(removal, "cost", lambda model, example, kind: next(measured))
    method = object.__new__(StructuredPruning)
    method.target_kind = "latency"
    ctx = SimpleNamespace(model=None, data=SimpleNamespace(example_input=lambda n: None))
    assert method._step_cost_target(ctx, 0.4) == pytest.approx(0.4)
    assert method._step_cost_target(ctx, 0.64) == pytest.approx(1 - 0.36 * 10.0 / 12.5)


def test_round_to_auto_is_the_cpu_kernels_channel_block(monkeypatch):
    import torch

    from agf.method import StructuredPruning

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert StructuredPruning(round_to="auto").round_to == 8 and StructuredPruning(round_to=4).round_to == 4
