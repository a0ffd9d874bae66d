"""The study runner: LR chosen on validation, nothing re-run that the store already has."""
from __future__ import annotations

import pytest

from experiments.results import ResultsStore
from experiments.study import StudyIndex, StudySpec, choose_lr, compose, run_study


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

    def __call__(self, points):
        self.calls.append([list(p) for p in points])


def test_runner_skips_what_the_store_has_and_runs_the_chosen_lr_for_missing_seeds(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", grid={"method": ["magnitude"], "sparsity.target": [0.5]},
                     lr_grid=[0.01, 0.03, 0.1], select_seed=0, seeds=[0, 1], plateau_check=False)
    rd = str(tmp_path)
    store = ResultsStore(rd)

    def put(overrides, val=None):
        store.append({"run_id": "x", "experiment": "study/h1_lenet300", "status": "ok",
                      "config": compose(overrides), "metrics": {"val_acc": val}}, study=True)
    base = spec.base()
    for s in (0, 1):
        put([*base, "method=dense", "stages=[pretrain,evaluate]", f"seed={s}"])
    for lr, val in ((0.01, 80.0), (0.03, 85.0), (0.1, 70.0)):
        put([*base, "method=magnitude", "sparsity.target=0.5", f"method.lr={lr}", "seed=0"], val)
    rec = Recorder(rd)
    chosen = run_study(spec, rec)
    assert chosen[0]["lr"] == 0.03 and chosen[0]["val_by_lr"] == {0.01: 80.0, 0.03: 85.0, 0.1: 70.0}
    assert rec.calls == [[[*base, "method=magnitude", "sparsity.target=0.5", "method.lr=0.03", "seed=1"]]]


def test_a_diverged_lr_is_not_chosen_and_not_launched_again(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", grid={"method": ["gmp"], "sparsity.target": [0.5]},
                     lr_grid=[0.03, 0.1, 0.3], select_seed=0, seeds=[0, 1], dense=False)
    store = ResultsStore(tmp_path)
    cell = [*spec.base(), "method=gmp", "sparsity.target=0.5"]

    def put(lr, val, status="ok", error=None, run_id="x"):
        store.append({"run_id": run_id, "experiment": "study/h1_lenet300", "status": status, "error": error,
                      "config": compose([*cell, f"method.lr={lr}", "seed=0"]), "metrics": {"val_acc": val}},
                     study=True)
    put(0.03, 85.0)
    put(0.1, 86.0)
    put(0.3, None, "failed", "NonFiniteLoss: non-finite training loss in finetune epoch 1 step 33; lower method.lr")
    rec = Recorder(tmp_path)
    chosen = run_study(spec, rec)
    assert chosen[0]["val_by_lr"][0.3] == float("-inf") and chosen[0]["lr"] == 0.1
    assert rec.calls == [[[*cell, "method.lr=0.1", "seed=1"]]]          # 0.3 is done: not re-run
    put(0.1, None, "failed", "RuntimeError: disk full", run_id="y")     # any other failure is a missing run
    assert run_study(spec, Recorder(tmp_path))[0]["lr"] == 0.1          # ... and the earlier ok record still counts
    assert choose_lr({0.03: float("-inf"), 0.1: float("-inf")}) is None  # every LR diverged: nothing to choose


def test_a_seed_chunk_launches_only_its_seeds_and_the_lr_grid_only_with_the_selection_seed(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", grid={"method": ["magnitude"], "sparsity.target": [0.5]},
                     lr_grid=[0.01, 0.03, 0.1], select_seed=0, seeds=[0, 1, 2], plateau_check=False)
    base, cell = spec.base(), ["method=magnitude", "sparsity.target=0.5"]
    dense = [*base, "method=dense", "stages=[pretrain,evaluate]"]
    rec = Recorder(tmp_path)
    assert run_study(spec, rec, only_seeds=[1])[0]["lr"] is None     # seed 1 alone: no LR grid, so no finals yet
    assert rec.calls == [[[*dense, "seed=1"]]]
    rec = Recorder(tmp_path)
    run_study(spec, rec, only_seeds=[0])
    assert rec.calls == [[[*dense, "seed=0"]], [[*base, *cell, f"method.lr={lr}", "seed=0"] for lr in (0.01, 0.03, 0.1)]]
    store = ResultsStore(tmp_path)
    for lr, val in ((0.01, 80.0), (0.03, 85.0), (0.1, 70.0)):
        store.append({"run_id": "x", "experiment": "study/h1_lenet300", "status": "ok",
                      "config": compose([*base, *cell, f"method.lr={lr}", "seed=0"]), "metrics": {"val_acc": val}},
                     study=True)
    rec = Recorder(tmp_path)
    run_study(spec, rec, only_seeds=[2])
    assert rec.calls == [[[*dense, "seed=2"]], [[*base, *cell, "method.lr=0.03", "seed=2"]]]


def test_runner_launches_the_lr_grid_when_selection_runs_are_missing(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", grid={"method": ["magnitude"], "sparsity.target": [0.5]},
                     lr_grid=[0.01, 0.03, 0.1], seeds=[0], dense=False)
    rec = Recorder(tmp_path)
    chosen = run_study(spec, rec)
    assert chosen[0]["lr"] is None                  # nothing recorded yet: no final runs launched
    assert rec.calls == [[[*spec.base(), "method=magnitude", "sparsity.target=0.5", f"method.lr={lr}", "seed=0"]
                          for lr in (0.01, 0.03, 0.1)]]


def test_runner_trains_dense_models_and_their_three_quarter_budget_plateau_check(tmp_path):
    spec = StudySpec(name="t", experiment="study/h1_lenet300", seeds=[0, 1])
    rec = Recorder(tmp_path)
    run_study(spec, rec)
    dense = [*spec.base(), "method=dense", "stages=[pretrain,evaluate]"]
    assert rec.calls == [[[*dense, "seed=0"], [*dense, "seed=1"]],
                         [[*dense, "trainer.pretrain.epochs=30", "seed=0"], [*dense, "trainer.pretrain.epochs=30", "seed=1"]]]


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
    assert rec.calls == [[[*spec.base(), f"method.pressure.fixed_lambda={lam}", f"seed={s}"]
                          for lam in (0.5, 1.0) for s in (0, 1)]]


def test_a_record_counts_by_the_study_axes_not_by_the_config_layout(tmp_path):
    """A key added or dropped since the record was written does not re-run it; another axis value does."""
    spec = StudySpec(name="t", experiment="study/h1_lenet300", grid={"method": ["gmp"], "sparsity.target": [0.9]},
                     seeds=[0, 1, 2], dense=False)
    store = ResultsStore(tmp_path)
    point = [*spec.base(), "method=gmp", "sparsity.target=0.9"]
    old = compose([*point, "seed=0"])
    old["method"].pop("epochs")                 # a key the code added later
    old["method"]["retired_option"] = 3         # a key it dropped
    other_lr = compose([*point, "seed=1", "method.lr=0.05"])      # another value of an axis the study sets
    other_budget = compose([*point, "seed=2", "trainer.epochs=3"])   # another protocol (budget)
    for cfg in (old, other_lr, other_budget):
        store.append({"run_id": "x", "experiment": "study/h1_lenet300", "status": "ok", "config": cfg}, study=True)
    rec = Recorder(tmp_path)
    run_study(spec, rec)
    assert rec.calls == [[[*point, "seed=1"], [*point, "seed=2"]]]


def test_the_committed_store_is_complete_for_the_finished_studies():
    """The finished studies' committed records still count on today's code: ``make study`` re-runs none."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    spec = StudySpec.load("h2_lenet300")
    rec = Recorder(root)
    run_study(spec, rec)
    assert rec.calls == []
    h1 = StudySpec.load("h1_lenet300")
    index = StudyIndex(h1, root)
    dense = [*h1.base(), "method=dense", "stages=[pretrain,evaluate]"]
    assert index.missing(dense, h1.seeds) == []
    assert all(index.missing([*h1.base(), *cell, f"method.lr={lr}"], [h1.select_seed]) == []
               for cell in h1.cells()[::4] for lr in h1.lr_grid)


def test_a_shared_study_counts_the_other_studys_records_once(tmp_path):
    """``shares``: a point of the other preset (same config but the experiment's name) counts and is not re-run;
    another target is; where both studies have the point, the study's own record is the one that counts."""
    from experiments.study import counted

    (tmp_path / "a.yaml").write_text("experiment: study/a1_resnet8\ngrid: {scorer: [agf]}\nseeds: [0]\n"
                                     "dense: false\n")
    (tmp_path / "b.yaml").write_text("experiment: study/a2_resnet8\ngrid: {scorer: [agf], sparsity.target: [0.75, "
                                     "0.875]}\nseeds: [0]\ndense: false\nshares: [a]\n")
    a, b = StudySpec.load("a", study_dir=tmp_path), StudySpec.load("b", study_dir=tmp_path)
    assert b.shares == ["a"]
    b.experiments = lambda: ["study/a2_resnet8", "study/a1_resnet8"]   # resolved from tmp_path, not conf/study
    store = ResultsStore(tmp_path)
    shared = [*a.base(), "scorer=agf", "sparsity.target=0.75", "seed=0"]
    store.append({"run_id": "a1", "experiment": "study/a1_resnet8", "status": "ok", "config": compose(shared)},
                 study=True)
    rec = Recorder(tmp_path)
    run_study(b, rec)
    assert rec.calls == [[[*b.base(), "scorer=agf", "sparsity.target=0.875", "seed=0"]]]
    own = compose([*b.base(), "scorer=agf", "sparsity.target=0.75", "seed=0"])
    store.append({"run_id": "a2", "experiment": "study/a2_resnet8", "status": "ok", "config": own}, study=True)
    store.append({"run_id": "a1-later", "experiment": "study/a1_resnet8", "status": "ok", "config": compose(shared)},
                 study=True)
    assert [r["run_id"] for r in counted(store.records(study_only=True), b)] == ["a2"]
    assert [r["run_id"] for r in counted(store.records(study_only=True), a)] == ["a1-later"]


def test_a2_shares_a1s_points_on_the_committed_store():
    """A2's 75 % LR-selection runs are A1's committed ones (the presets differ only in name)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    a2 = StudySpec.load("a2_resnet8")
    index = StudyIndex(a2, root)
    for scorer in ("agf", "ria", "random"):
        cell = [*a2.base(), f"scorer={scorer}", "sparsity.target=0.75"]
        assert all(index.missing([*cell, f"method.lr={lr}"], [a2.select_seed]) == [] for lr in a2.lr_grid)
    assert index.missing([*a2.base(), "method=dense", "method.finetune=true"], a2.seeds) == []


def test_an_arm_sets_several_keys_together_and_they_identify_its_points():
    spec = StudySpec.load("s1_resnet8")
    cells = spec.cells()
    assert len(cells) == 8
    assert cells[0] == ["method=hyperflows_structured", "sparsity.target=0.5"]
    assert cells[3] == ["scorer=agf", "method.target_kind=macs", "sparsity.target=0.7"]
    assert {"method", "scorer", "method.target_kind", "sparsity.target"} <= set(spec.identity_keys())
    cfg = compose([*spec.base(), *cells[0], "seed=0"])
    assert cfg["method"]["name"] == "hyperflows_structured" and cfg["method"]["units"]["cost"] == "macs"
    assert compose([*spec.base(), *cells[3], "seed=0"])["method"]["target_kind"] == "macs"


def test_lr_from_runs_each_cell_at_the_other_studys_choice(tmp_path, monkeypatch):
    """``lr_from``: no LR search of its own; each cell waits for, then takes, the other study's validation choice."""
    from experiments import study

    src = StudySpec(name="src", experiment="study/h1_lenet300", grid={"method": ["magnitude"],
                    "sparsity.target": [0.5]}, lr_grid=[0.01, 0.03, 0.1], seeds=[0], dense=False)
    monkeypatch.setattr(study.StudySpec, "load", classmethod(lambda cls, name, study_dir=None: src))
    route = StudySpec(name="route", experiment="study/h2_lenet300", grid={"method": ["magnitude"],
                      "sparsity.target": [0.5]}, lr_from="src", seeds=[0, 1], dense=False, plateau_check=False)
    rec = Recorder(tmp_path)
    assert run_study(route, rec)[0]["lr"] is None and rec.calls == []   # the source has no LR runs yet
    store = ResultsStore(tmp_path)
    for lr, val in ((0.01, 80.0), (0.03, 79.0), (0.1, 85.0)):
        store.append({"run_id": "x", "experiment": "study/h1_lenet300", "status": "ok", "metrics": {"val_acc": val},
                      "config": compose([*src.base(), "method=magnitude", "sparsity.target=0.5",
                                         f"method.lr={lr}", "seed=0"])}, study=True)
    assert run_study(route, rec)[0]["lr"] == 0.1
    assert rec.calls == [[[*route.base(), "method=magnitude", "sparsity.target=0.5", "method.lr=0.1", f"seed={s}"]
                          for s in (0, 1)]]


def test_a_spec_with_both_an_lr_grid_and_lr_from_is_refused(tmp_path):
    (tmp_path / "both.yaml").write_text("experiment: study/h1_lenet300\nlr_grid: [0.01, 0.03, 0.1]\nlr_from: x\n")
    with pytest.raises(SystemExit, match="lr_from"):
        StudySpec.load("both", study_dir=tmp_path)


def test_s1_on_the_vit_shares_a3s_dense_models_and_gives_the_flows_a3s_adamw_recipe():
    """S1-vit's dense cache key is A3's (same dataset, model, pretrain recipe), and its flows arm trains the weights with
    AdamW, decay 0.05 and no decay on biases and norms, as A3's fine-tuning does; its one-shot arms target MACs."""
    import hydra.utils
    from experiments.checkpoint import config_key
    from experiments.train.optim import create_optimizer
    from experiments.models import create_model

    s1, a3 = StudySpec.load("s1_vit_micro"), StudySpec.load("a3_vit_micro")
    c1, c3 = (compose([*spec.base(), "seed=0"]) for spec in (s1, a3))
    assert config_key(c1["dataset"], c1["model"], c1["trainer"]["pretrain"], 0) == \
        config_key(c3["dataset"], c3["model"], c3["trainer"]["pretrain"], 0)
    flows, agf = (compose([*s1.base(), *cell, "method.lr=0.0003", "seed=0"]) for cell in s1.cells()[:3:2])
    assert agf["method"]["target_kind"] == "macs" and agf["trainer"]["epochs"] == flows["trainer"]["epochs"] == 5
    method = hydra.utils.instantiate(flows["method"], _convert_="all")
    opt = method.fit_options(None)["optimizer"]
    assert (opt["name"], opt["lr"], opt["weight_decay"], opt["no_decay_bias_norm"]) == ("adamw", 0.0003, 0.05, True)
    model = create_model("vit_micro", 10, 1, 28)
    groups = create_optimizer(model.named_parameters(), **opt).param_groups
    ndim1 = sum(p.numel() for p in model.parameters() if p.ndim <= 1)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert sum(p.numel() for p in groups[1]["params"]) == ndim1


def test_h2_at_120_epochs_is_its_own_set_of_points_of_the_same_preset():
    """The longer H2 budget runs the same preset (one store file, one report) but its records never count for the
    40-epoch study's points, nor the other way round: the budget is a protocol key."""
    from experiments.study import point_identity, point_keys

    short, long = StudySpec.load("h2_lenet300"), StudySpec.load("h2_lenet300_e120")
    assert short.experiment == long.experiment and short.grid == long.grid
    point = [*short.cells()[0], "seed=0"]
    a, b = compose([*short.base(), *point]), compose([*long.base(), *point])
    assert (a["trainer"]["epochs"], b["trainer"]["epochs"]) == (40, 120)
    assert point_identity(a, point_keys(short)) != point_identity(b, point_keys(short))
    assert point_identity(a, point_keys(long)) != point_identity(b, point_keys(long))


@pytest.mark.parametrize("name", ["d1_resnet8", "s1_resnet8"])
def test_every_point_of_a_study_with_arms_builds_its_method(name):
    """The runner's dense point and every cell take the preset's keys: a method key in the preset (D1's latency
    target once was) reaches method=dense too and fails there, so arms carry such keys."""
    from omegaconf import OmegaConf

    from experiments.pipeline import instantiate_component

    spec = StudySpec.load(name)
    points = [[*spec.base(), "method=dense", "stages=[pretrain,evaluate]", "seed=0"]]
    points += [[*spec.base(), *cell, f"method.lr={spec.lr_grid[0]}", "seed=0"] for cell in spec.cells()]
    for point in points:
        cfg = OmegaConf.create(compose(point))
        assert instantiate_component(cfg.method, "method").name == cfg.method.name
