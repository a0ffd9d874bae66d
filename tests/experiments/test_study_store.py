"""The committed study store (results/store): dense floors and plateaus, delivered sparsity, tables rebuild."""
from __future__ import annotations

from pathlib import Path

import pytest

from experiments.results import read_records
from experiments.study import StudySpec
from flowprune.reports.study_dense import FLOORS, PLATEAU

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "results" / "store"

#: models whose dense budget the study issue caps (CPU-minutes per seed): where they do not plateau within it, the
#: issue asks for the floor and a flattening learning curve instead, and the README to say so
CAPPED_MINUTES = {"vit_micro": 40}
TOLERANCE = 0.003   # achieved sparsity vs target
MAC_TOLERANCE = 0.02  # kept MAC fraction vs 1 - target (issue 13)


def study_records():
    files = sorted(STORE.glob("*.jsonl"))
    if not files:
        pytest.skip("no committed study records yet")
    return [r for f in files for r in read_records(f) if r.get("status") == "ok"]


def dense_records():
    return [r for r in study_records()
            if r["config"]["method"]["name"] == "dense" and "finetune" not in r["config"]["stages"]]


def dense_by_budget():
    """(experiment, model) -> {pretrain epochs: {seed: test acc}} of the dense-only records."""
    out = {}
    for r in dense_records():
        key = (r["experiment"], r["config"]["model"]["name"])
        out.setdefault(key, {}).setdefault(r["config"]["trainer"]["pretrain"]["epochs"], {})[r["seed"]] = \
            r["metrics"]["test_acc"]
    assert out, "the study store has no dense records"
    return out


def assert_capped_and_flattening(exp: str, model: str, full: int):
    """A capped model that did not plateau: one more quarter of its budget would not fit the cap (measured pretrain
    minutes per seed, 1 thread), and each seed's curve gains per epoch over its last quarter < 1/4 of its first."""
    runs = [r for r in dense_records() if r["experiment"] == exp and r["config"]["trainer"]["pretrain"]["epochs"] == full]
    minutes = sum(r["stage_seconds"]["pretrain"] for r in runs) / len(runs) / 60
    assert minutes * 4 / 3 > CAPPED_MINUTES[model], f"{exp}: {minutes:.0f} min per seed, a longer budget fits the cap"
    for r in runs:
        c = r["metrics"]["dense_curve_test_acc"]
        q = len(c) // 4
        first, last = (c[q] - c[0]) / q, (c[-1] - c[-1 - q]) / q
        assert last < first / 4, f"{exp} seed {r['seed']}: the curve is not flattening ({first:.2f} -> {last:.2f}/epoch)"


def test_every_dense_model_meets_its_floor():
    for (exp, model), budgets in dense_by_budget().items():
        accs = list(budgets[max(budgets)].values())
        assert sum(accs) / len(accs) >= FLOORS[model], f"{exp}: dense {model} mean {sum(accs) / len(accs):.2f}"


def test_every_dense_model_has_plateaued():
    """The last quarter of the budget adds < 0.3 points: the same recipe with 3/4 of the epochs, paired by seed (a
    capped model may instead show its budget at the cap and its curve flattening)."""
    dense = dense_by_budget()
    for (exp, model), budgets in dense.items():
        full = max(budgets)
        short = budgets.get(round(0.75 * full))
        if not short and not StudySpec.load(exp.split("/", 1)[1]).plateau_check:
            # a study declaring the dense recipe of another (``plateau_check: false``) is covered by that one's check:
            # the plateau is a property of the recipe and budget (the models themselves differ across machines)
            other = [b for (e, m), b in dense.items() if m == model and e != exp and full in b and round(0.75 * full) in b]
            budgets, short = (other[0], other[0][round(0.75 * full)]) if other else (budgets, None)
        assert short, f"{exp}: no dense run with {round(0.75 * full)} epochs (the plateau check)"
        seeds = sorted(set(short) & set(budgets[full]))
        gain = sum(budgets[full][s] - short[s] for s in seeds) / len(seeds)
        if model in CAPPED_MINUTES and gain >= PLATEAU:
            assert_capped_and_flattening(exp, model, full)
            continue
        assert gain < PLATEAU, f"{exp}: dense {model} gains {gain:+.2f} over the last quarter of its budget"


def test_every_pruned_record_delivers_the_asked_sparsity():
    for r in study_records():
        target = (r["config"].get("sparsity") or {}).get("target")
        if r["config"]["method"]["name"] == "dense" or not r["experiment"].startswith("study/h1"):
            continue
        if (r["config"]["method"].get("scheduler") or {}).get("control") == "open_loop":
            continue   # the paper's open-loop controller runs beside as a finding (claim C1), not a table entry
        assert abs(r["metrics"]["sparsity"] - target) <= TOLERANCE + 1e-9, (
            f"{r['run_id']} {r['config']['method']['name']}: {r['metrics']['sparsity']:.4f} for {target}")


def test_every_mac_targeted_record_keeps_the_asked_macs():
    """A MAC target (one-shot removal with ``target_kind=macs``, structured Hyperflows' MAC-weighted flows) keeps
    1 − target of the dense MACs within ±2 % (issue 13), measured on the physically narrower model."""
    for r in study_records():
        method, target = r["config"]["method"], (r["config"].get("sparsity") or {}).get("target")
        macs_target = method.get("target_kind") == "macs" or (
            method["name"] == "hyperflows_structured" and (method.get("units") or {}).get("cost", "macs") == "macs")
        if not macs_target:
            continue
        kept = r["metrics"]["macs_effective"] / r["metrics"]["dense_macs"]
        assert abs(kept - (1 - target)) <= MAC_TOLERANCE, f"{r['run_id']} {method['name']}: {kept:.4f} of the MACs"


def test_study_tables_rebuild_byte_identically(tmp_path):
    study_records()
    from flowprune.reports import claims
    from flowprune.reports import study as study_hyperflows

    study_hyperflows.main(["--results-dir", str(ROOT / "results"), "--out", str(tmp_path)])
    claims.main(["--results-dir", str(ROOT / "results"), "--out", str(tmp_path)])
    built = sorted((tmp_path / "tables").iterdir())
    assert built
    for path in built:
        committed = ROOT / "results" / "tables" / path.name
        assert committed.exists(), f"{path.name} is built by `make tables` but not committed"
        assert path.read_bytes() == committed.read_bytes(), f"{path.name} differs from the committed table"
