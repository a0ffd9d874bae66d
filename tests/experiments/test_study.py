"""The study runner: LR chosen on validation, nothing re-run that the store already has."""
from __future__ import annotations

import pytest

from experiments.results import ResultsStore
from experiments.study import StudySpec, choose_lr, key_of, run_study


def test_choose_lr_takes_best_validation_accuracy_and_the_smaller_lr_on_ties():
    assert choose_lr({0.01: 88.0, 0.03: 89.5, 0.1: 89.0}) == 0.03
    assert choose_lr({0.01: 89.5, 0.03: 89.5, 0.1: 80.0}) == 0.01
    assert choose_lr({0.01: 89.5, 0.03: None, 0.1: 80.0}) is None


def test_spec_refuses_a_narrow_lr_grid(tmp_path):
    (tmp_path / "narrow.yaml").write_text("experiment: study/h1_lenet300\nlr_grid: [0.01, 0.02, 0.05]\n")
    with pytest.raises(SystemExit, match="10x"):
        StudySpec.load("narrow", study_dir=tmp_path)
    with pytest.raises(SystemExit, match="known: narrow"):
        StudySpec.load("nope", study_dir=tmp_path)


class Recorder:
    def __init__(self, results_dir):
        self.results_dir = str(results_dir)
        self.calls = []

    def __call__(self, overrides, sweep):
        self.calls.append((list(overrides), dict(sweep)))


def test_runner_skips_what_the_store_has_and_runs_the_chosen_lr_for_missing_seeds(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", grid={"method": ["magnitude"], "sparsity.target": [0.5]},
                     lr_grid=[0.01, 0.03, 0.1], select_seed=0, seeds=[0, 1], plateau_check=False)
    rd = str(tmp_path)
    store = ResultsStore(rd)

    def put(overrides, val=None):
        store.append({"run_id": "x", "experiment": "study/h1_lenet300", "status": "ok",
                      "run_key": key_of([*overrides, f"results_dir={rd}"]), "metrics": {"val_acc": val}}, study=True)
    base = spec.base()
    for s in (0, 1):
        put([*base, "method=dense", "stages=[pretrain,evaluate]", f"seed={s}"])
    for lr, val in ((0.01, 80.0), (0.03, 85.0), (0.1, 70.0)):
        put([*base, "method=magnitude", "sparsity.target=0.5", f"method.lr={lr}", "seed=0"], val)
    rec = Recorder(rd)
    chosen = run_study(spec, rec)
    assert chosen[0]["lr"] == 0.03 and chosen[0]["val_by_lr"] == {0.01: 80.0, 0.03: 85.0, 0.1: 70.0}
    assert rec.calls == [([*base, "method=magnitude", "sparsity.target=0.5", "method.lr=0.03"], {"seed": [1]})]


def test_runner_launches_the_lr_grid_when_selection_runs_are_missing(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", grid={"method": ["magnitude"], "sparsity.target": [0.5]},
                     lr_grid=[0.01, 0.03, 0.1], seeds=[0], dense=False)
    rec = Recorder(tmp_path)
    chosen = run_study(spec, rec)
    assert chosen[0]["lr"] is None                  # nothing recorded yet: no final runs launched
    assert rec.calls == [(spec.base(), {"method": ["magnitude"], "sparsity.target": [0.5],
                                        "method.lr": [0.01, 0.03, 0.1], "seed": [0]})]


def test_runner_trains_dense_models_and_their_three_quarter_budget_plateau_check(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", seeds=[0, 1])
    rec = Recorder(tmp_path)
    run_study(spec, rec)
    dense = [*spec.base(), "method=dense", "stages=[pretrain,evaluate]"]
    assert rec.calls == [(dense, {"seed": [0, 1]}), ([*dense, "trainer.pretrain.epochs=30"], {"seed": [0, 1]})]


def test_skip_done_returns_the_recorded_run_without_running_it_again(tmp_path):
    from conftest import TINY, compose_cfg
    from experiments.pipeline import run

    args = TINY + ["method=magnitude", "sparsity.target=0.5", "store=study", "skip_done=true",
                   "experiment_name=t/skip"]
    first = run(compose_cfg(args, tmp_path))
    path = tmp_path / "store" / "t__skip.jsonl"
    assert first["status"] == "ok" and first["run_key"] and path.exists()
    again = run(compose_cfg(args, tmp_path))
    assert again["run_id"] == first["run_id"]
    assert len(path.read_text().splitlines()) == 1
    other = run(compose_cfg(args + ["method.lr=0.05"], tmp_path))   # another config: it runs
    assert other["run_id"] != first["run_id"] and len(path.read_text().splitlines()) == 2


def test_a_grid_without_lr_search_is_one_sweep_over_every_seed(tmp_path):
    spec = StudySpec(name="t", experiment="study/h2_lenet300", grid={"method.pressure.fixed_lambda": [0.5, 1.0]},
                     seeds=[0, 1], dense=False)
    rec = Recorder(tmp_path)
    run_study(spec, rec)
    assert rec.calls == [(spec.base(), {"method.pressure.fixed_lambda": [0.5, 1.0], "seed": [0, 1]})]
