"""Sparsity–pressure power law of Hyperflows, eq. (15): D(λ) = c · λ^{-(α0 + α1 ln λ)}.

λ is the constant coefficient multiplying mean(t) in the pressure loss (no scheduler, no regrowth) and
D the final density (% of flow parameters with t ≥ 0). Following the authors' plotting script (spec §4.2,
ambiguity A10) the variable-exponent law is fitted as a quadratic in log space,

    ln D = a + b ln λ + d (ln λ)²,   c = e^a, α0 = −b, α1 = −d,

by ordinary least squares (what their ``scipy.optimize.curve_fit`` on (λ, ln D) computes, since the model
is linear in its parameters), next to the pure power law ln D = a' + b' ln λ (c' = e^{a'}, α = −b'), the
special case α1 = 0 of eq. (15). Collapsed runs (D = 0) and λ ≤ 0 are dropped before fitting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Final densities (%) of the authors' constant-pressure sweeps, Adam on t, thresholded pressure
#: (ε = 0.3), 300 epochs; λ = 2^k. Copied from the spec (shared/specs/hyperflows.md §4.1), which read them
#: from the authors' ``experiments_outputs/*.json``. The largest λ of each sweep collapsed to 0 %.
#: The "ResNet-50 on CIFAR-10" sweep of the paper's figure is, in the stored data, ResNet-18 (spec A10).
REPORTED_SWEEPS: dict[str, dict] = {
    "lenet300_mnist": {
        "model": "lenet300", "dataset": "mnist", "label": "LeNet-300-100 / MNIST (Adam on t)",
        "lam": [2.0 ** k for k in range(-6, 9)],
        "density_pct": [10.85, 7.49, 5.07, 3.60, 2.45, 1.27, 0.786, 0.482, 0.290, 0.165, 0.120, 0.074,
                        0.054, 0.020, 0.0],
    },
    "resnet18_cifar10": {
        "model": "resnet18_cifar", "dataset": "cifar10",
        "label": "ResNet-18 / CIFAR-10 (Adam on t; labelled ResNet-50 in the paper)",
        "lam": [2.0 ** k for k in range(-9, 6)],
        "density_pct": [7.29, 5.14, 3.65, 2.64, 1.92, 1.36, 0.914, 0.545, 0.298, 0.156, 0.076, 0.038,
                        0.018, 0.0061, 0.0],
    },
}


def variable_exponent_law(lam, c: float, alpha0: float, alpha1: float = 0.0) -> np.ndarray:
    """Eq. (15): D(λ) = c · λ^{-(α0 + α1 ln λ)}; α1 = 0 gives the pure power law c · λ^{-α}."""
    x = np.log(np.asarray(lam, dtype=float))
    return c * np.exp(-(alpha0 + alpha1 * x) * x)


def usable_points(lam, density) -> tuple[np.ndarray, np.ndarray]:
    """(λ, D) pairs with λ > 0 and D > 0 (finite): collapsed runs cannot enter a log-space fit."""
    lam, density = np.asarray(lam, dtype=float).ravel(), np.asarray(density, dtype=float).ravel()
    if lam.shape != density.shape:
        raise ValueError(f"lam and density differ in length ({lam.size} vs {density.size})")
    keep = np.isfinite(lam) & np.isfinite(density) & (lam > 0) & (density > 0)
    return lam[keep], density[keep]


def polyfit_r2(x: np.ndarray, y: np.ndarray, degree: int) -> tuple[np.ndarray, float]:
    """Least-squares coefficients (constant first) of a degree-``degree`` polynomial, and its R²."""
    design = np.vander(x, degree + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    ss_res = float(np.sum((y - design @ coef) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return coef, (1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


@dataclass(frozen=True)
class PowerLawFit:
    """Constants of eq. (15) (variable exponent) and of the pure power law; R² are in log space.

    ``c`` and ``c_pure`` carry the unit of the densities that were fitted (the paper uses %).
    """
    c: float
    alpha0: float
    alpha1: float
    r2: float
    c_pure: float
    alpha: float
    r2_pure: float
    n_points: int

    def predict(self, lam, pure: bool = False) -> np.ndarray:
        """Density at ``lam`` from the variable-exponent law, or from the pure power law if ``pure``."""
        if pure:
            return variable_exponent_law(lam, self.c_pure, self.alpha)
        return variable_exponent_law(lam, self.c, self.alpha0, self.alpha1)


def fit_power_law(lam, density) -> PowerLawFit:
    """Fit eq. (15) and the pure power law to (λ, D) after dropping λ ≤ 0 and D ≤ 0 (collapsed) points."""
    lam, density = usable_points(lam, density)
    if np.unique(lam).size < 3:
        raise ValueError(f"the power-law fit needs >= 3 distinct pressures with density > 0, got "
                         f"{np.unique(lam).size}; sweep more values of method.pressure.fixed_lambda")
    x, y = np.log(lam), np.log(density)
    (a, b, d), r2 = polyfit_r2(x, y, 2)
    (a1, b1), r2_pure = polyfit_r2(x, y, 1)
    return PowerLawFit(c=float(np.exp(a)), alpha0=float(-b), alpha1=float(-d), r2=r2,
                       c_pure=float(np.exp(a1)), alpha=float(-b1), r2_pure=r2_pure, n_points=int(lam.size))
