"""Power-law fit of Hyperflows eq. (15) against the spec's worked examples (§4), exact synthetic laws and
scipy's curve_fit (what the authors ran); the report script against the same fit on synthetic records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

from experiments.results import ResultsStore
from hyperflows.power_law import REPORTED_SWEEPS, fit_power_law

ROOT = Path(__file__).resolve().parents[2]

# Constants of the spec's refit (§4.2) and the tolerance each is checked to. Most agree to half a unit in the
# last printed digit; LeNet c and α1 and ResNet c sit 1–2 units off, because the densities listed in §4.1 (and
# hard-coded in REPORTED_SWEEPS) are rounded to 2–3 significant digits (the spec presumably refit the raw JSON).
SPEC_CONSTANTS = {
    "lenet300_mnist": {"n_points": (14, 0), "c": (0.826, 0.001), "alpha0": (0.679, 0.0005),
                       "alpha1": (0.0104, 0.0002), "c_pure": (0.762, 0.0005), "alpha": (0.686, 0.0005)},
    "resnet18_cifar10": {"n_points": (14, 0), "c": (0.153, 0.001), "alpha0": (0.952, 0.0005),
                         "alpha1": (0.057, 0.0005), "c_pure": (0.116, 0.0005), "alpha": (0.754, 0.0005)},
}


@pytest.mark.parametrize("sweep", sorted(SPEC_CONSTANTS))
def test_refit_of_reported_sweeps_matches_spec(sweep):
    s = REPORTED_SWEEPS[sweep]
    assert s["density_pct"][-1] == 0.0  # the collapse at the largest λ is in the data and must be dropped
    fit = fit_power_law(s["lam"], s["density_pct"])
    for name, (want, tol) in SPEC_CONSTANTS[sweep].items():
        assert getattr(fit, name) == pytest.approx(want, abs=tol), name
    assert 0.99 < fit.r2 <= 1 and fit.r2 >= fit.r2_pure  # nested models: the quadratic never fits worse


def test_quadratic_fit_equals_scipy_curve_fit():
    """The authors' procedure: curve_fit of a + b ln γ + d (ln γ)² on (γ, ln D), p0 = [ln D_first, -1, 0]."""
    s = REPORTED_SWEEPS["resnet18_cifar10"]
    lam, dens = np.array(s["lam"][:-1]), np.array(s["density_pct"][:-1])
    model = lambda g, a, b, d: a + b * np.log(g) + d * np.log(g) ** 2  # noqa: E731
    (a, b, d), _ = curve_fit(model, lam, np.log(dens), p0=[np.log(dens[0]), -1.0, 0.0])
    fit = fit_power_law(s["lam"], s["density_pct"])
    assert fit.c == pytest.approx(np.exp(a), rel=1e-6)
    assert fit.alpha0 == pytest.approx(-b, rel=1e-6)
    assert fit.alpha1 == pytest.approx(-d, rel=1e-6)


def test_exact_synthetic_laws_are_recovered():
    lam = 2.0 ** np.arange(-6, 7)
    curved = 0.5 * lam ** -(0.7 + 0.02 * np.log(lam))
    fit = fit_power_law(lam, curved)
    assert (fit.c, fit.alpha0, fit.alpha1) == pytest.approx((0.5, 0.7, 0.02), rel=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.r2_pure < 1
    assert fit.predict(lam) == pytest.approx(curved, rel=1e-9)

    pure = 3.0 * lam ** -0.8
    fit = fit_power_law(lam, pure)
    assert (fit.c_pure, fit.alpha) == pytest.approx((3.0, 0.8), rel=1e-9)
    assert fit.alpha1 == pytest.approx(0.0, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.r2_pure == pytest.approx(1.0, abs=1e-12)
    assert fit.predict(lam, pure=True) == pytest.approx(pure, rel=1e-9)


def test_collapsed_and_invalid_points_are_dropped():
    lam = 2.0 ** np.arange(-3, 4)
    dens = 2.0 * lam ** -0.6
    clean = fit_power_law(lam, dens)
    dirty = fit_power_law(np.r_[lam, 16.0, 32.0, 0.0, -1.0, 4.0], np.r_[dens, 0.0, 0.0, 1.0, 1.0, np.nan])
    assert dirty == clean and dirty.n_points == lam.size


def test_too_few_points_is_one_clear_error():
    with pytest.raises(ValueError, match="fixed_lambda"):
        fit_power_law([1.0, 2.0, 4.0, 8.0], [1.0, 0.5, 0.0, 0.0])


# --- flowprune report power_law on synthetic records ---------------------------------------------------

def load_script():
    from flowprune.reports import power_law

    return power_law


def record(run_id, lam, seed, metrics, experiment="hyperflows/power_law_proxy", status="ok", model="lenet300"):
    cfg = {"method": {"name": "hyperflows", "pressure": {"fixed_lambda": lam}}, "model": {"name": model},
           "dataset": {"name": "fashion_mnist"}, "sparsity": {"target": None}}
    return {"run_id": run_id, "experiment": experiment, "status": status, "config": cfg, "seed": seed,
            "metrics": metrics}


def test_script_table_matches_fit_on_the_same_records(tmp_path):
    lams = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    dens = {0: [0.20, 0.12, 0.07, 0.045, 0.025, 0.016], 1: [0.22, 0.11, 0.075, 0.040, 0.027, 0.014]}
    store = ResultsStore(tmp_path)
    for seed, ds in dens.items():
        for lam, d in zip(lams, ds):
            metrics = {"density": d} if lam != 2.0 else {"sparsity": 1 - d}  # fallback to 1 - sparsity
            store.append(record(f"r{lam}-{seed}", lam, seed, metrics))
        store.append(record(f"c-{seed}", 16.0, seed, {"density": 0.0}))  # collapse: plotted, not fitted
    store.append(record("failed", 1.0, 2, {"density": 0.9}, status="failed"))
    store.append(record("other", 1.0, 0, {"density": 0.9}, experiment="hyperflows/table1_proxy"))

    assert load_script().main(["--results-dir", str(tmp_path)]) == 0

    table = pd.read_csv(tmp_path / "tables" / "power_law.csv")
    ours = table[table["source"].str.startswith("ours")].iloc[0]
    expected = fit_power_law(lams + [16.0], 100 * np.r_[np.mean([dens[0], dens[1]], axis=0), 0.0])
    assert ours["model"] == "lenet300" and ours["points"] == expected.n_points == len(lams)
    for col, attr in [("c_pct", "c"), ("alpha0", "alpha0"), ("alpha1", "alpha1"), ("r2", "r2"),
                      ("c_pure_pct", "c_pure"), ("alpha", "alpha"), ("r2_pure", "r2_pure")]:
        assert ours[col] == pytest.approx(getattr(expected, attr), rel=1e-9), col
    reported = table[table["source"] == "reported (refit of the authors' data)"]
    assert sorted(reported["model"]) == ["lenet300", "resnet18_cifar"]
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {"power_law_lenet300.png", "power_law_lenet300.pdf"}
    assert (tmp_path / "figures" / "power_law_lenet300.png").stat().st_size > 10_000
    assert {"power_law.md", "power_law.tex"} <= {p.name for p in (tmp_path / "tables").iterdir()}


def test_script_without_records_exits_2(tmp_path, capsys):
    ResultsStore(tmp_path).append(record("x", 1.0, 0, {"density": 0.1}, experiment="something/else"))
    with pytest.raises(SystemExit) as exit_:
        load_script().main(["--results-dir", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hyperflows/power_law_proxy" in err
    assert not (tmp_path / "tables").exists()


def test_script_rejects_density_in_percent(tmp_path, capsys):
    ResultsStore(tmp_path).append(record("pct", 1.0, 0, {"density": 7.5}))
    with pytest.raises(SystemExit, match="2"):
        load_script().main(["--results-dir", str(tmp_path)])
    assert "run pct: metrics.density must be a fraction" in capsys.readouterr().err


def test_reference_demo_writes_figures_without_a_store(tmp_path):
    assert load_script().main(["--reference-demo", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "figures" / "power_law_reported_lenet300_mnist.png").exists()
    table = pd.read_csv(tmp_path / "tables" / "power_law_reported.csv")
    lenet = table[table["model"] == "lenet300"].iloc[0]
    assert lenet["c_pct"] == pytest.approx(SPEC_CONSTANTS["lenet300_mnist"]["c"][0], abs=0.001)
