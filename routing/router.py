"""The ``route`` stage: load both experts, cache their outputs once per split, sweep τ, choose it on
validation, report test, time the batched cascade, write CSV / figure / W&B table.

Instantiated by the pipeline from ``conf/routing/<policy>.yaml`` (``_target_: routing.router.Router``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from experiments.checkpoint import load_model
from experiments.errors import ConfigError
from experiments.measure import count_macs
from experiments.stats import auroc

from .cache import SplitOutputs, collect_split
from .costs import break_even_rate, random_expected_accuracy
from .pareto import pareto_mask
from .plot import plot_routing
from .policies import ZERO_COST, Policy, create_policy
from .sweep import select_point, sweep
from .timing import cascade_wallclock

log = logging.getLogger(__name__)


def expert_costs(full: nn.Module, pruned: nn.Module, example: torch.Tensor) -> tuple[float, float]:
    """Per-image effective MACs of the full and the pruned expert (masked weights count as removed)."""
    return (float(count_macs(full, example)["macs_effective"]), float(count_macs(pruned, example)["macs_effective"]))


def evaluate_policy(policy: Policy, val: SplitOutputs, test: SplitOutputs, c_full: float, c_pruned: float,
                    n_points: int, seed: int = 0) -> tuple[pd.DataFrame, SplitOutputs]:
    """The τ sweep of ``policy`` on cached outputs (fit on validation first); returns (curve, selection split)."""
    sel = policy.fit(val, seed=seed)
    s_val = policy.score(sel).numpy()
    s_test = policy.score(test).numpy()
    thr = policy.thresholds(s_val, n_points)
    curve = sweep(s_val, s_test, (sel.pruned_correct.numpy(), sel.full_correct.numpy()),
                  (test.pruned_correct.numpy(), test.full_correct.numpy()), c_full, c_pruned,
                  thresholds=thr, n_points=n_points)
    curve.insert(0, "policy", policy.name)
    curve["pareto"] = pareto_mask(curve["cost_cascade"], curve["acc_test"])
    curve["auroc_test"] = auroc(-s_test, ~test.pruned_correct.numpy())
    return curve, sel


class Router:
    """Config: ``policy`` (registry name), expert paths (default: this run's ``dense`` and ``final``
    checkpoints), ``n_points`` (≥ 50 τ quantiles), ``selection`` (``match_full`` | ``target_rate``),
    ``tolerance`` (accuracy points), ``compare`` (other policies swept from the same cache)."""

    def __init__(self, policy: str = "confidence", name: str | None = None, full_checkpoint: str | None = None,
                 pruned_checkpoint: str | None = None, n_points: int = 64, selection: str = "match_full",
                 tolerance: float = 0.1, target_rate: float | None = None, compare: list | None = None,
                 timing_repeats: int = 3, timing_batch_size: int = 1000, timing_max_samples: int | None = 2000,
                 batch_size: int = 1000,
                 seed: int = 0,
                 policy_kwargs: dict | None = None):
        self.policy_name = policy
        self.policy = create_policy(policy, seed=seed, **dict(policy_kwargs or {}))
        self.name = name or policy
        self.full_checkpoint, self.pruned_checkpoint = full_checkpoint, pruned_checkpoint
        self.n_points, self.selection, self.tolerance, self.target_rate = int(n_points), selection, tolerance, target_rate
        self.compare = [c for c in (compare or []) if c != policy]
        self.timing_repeats, self.timing_batch_size, self.seed = int(timing_repeats), timing_batch_size, seed
        self.timing_max_samples = timing_max_samples
        self.batch_size = int(batch_size)
        if self.n_points < 2:
            raise ConfigError(f"routing.n_points={n_points} must be ≥ 2 (≥ 50 for a Pareto curve)")

    # -- experts ---------------------------------------------------------------------------------
    def expert_paths(self, ctx) -> tuple[Path, Path]:
        full = self.full_checkpoint or ctx.checkpoints.get("dense")
        pruned = self.pruned_checkpoint or ctx.checkpoints.get("final")
        if full is None or pruned is None:
            raise ConfigError("routing needs two experts: set routing.full_checkpoint / routing.pruned_checkpoint "
                             "or keep the pretrain and evaluate stages with save_checkpoints=true")
        return Path(full), Path(pruned)

    def load_experts(self, ctx) -> tuple[nn.Module, nn.Module]:
        full_path, pruned_path = self.expert_paths(ctx)
        full, _ = load_model(full_path, ctx.device)
        pruned, _ = load_model(pruned_path, ctx.device)
        return full.eval(), pruned.eval()

    # -- the stage ---------------------------------------------------------------------------------
    def run(self, ctx) -> dict:
        if ctx.data.split_size("val") == 0:
            raise ConfigError("routing chooses τ on validation: set dataset.val_size > 0")
        full, pruned = self.load_experts(ctx)
        bs = self.batch_size
        metrics, curve, summary = self.route(full, pruned, ctx.data.loader("val", bs), ctx.data.loader("test", bs),
                                             ctx.data.example_input(1), ctx.device)
        if self.timing_repeats > 0:
            timing = self.time_cascade(ctx, full, pruned, metrics["routing_tau"])
            metrics.update({f"routing_{k}": v for k, v in timing.items()})
        out_dir = ctx.run_dir / "routing"
        out_dir.mkdir(parents=True, exist_ok=True)
        curve_path, summary_path = out_dir / f"curve_{self.name}.csv", out_dir / f"summary_{self.name}.csv"
        curve.to_csv(curve_path, index=False)
        summary.to_csv(summary_path, index=False)
        main = curve[curve["policy"] == self.policy.name]
        chosen = main.iloc[int(metrics["routing_point_index"])].to_dict()
        fig = plot_routing(main, {"acc_full": metrics["routing_full_acc"], "acc_pruned": metrics["routing_pruned_acc"],
                                  "cost_pruned": metrics["routing_mac_ratio"]}, chosen,
                           ctx.figure_path(f"routing_pareto_{self.name}.png"),
                           title=f"{ctx.model_spec['name']} on {ctx.data.name}: {self.policy.name} routing")
        metrics.update({"routing_curve_csv": str(curve_path), "routing_summary_csv": str(summary_path),
                        "routing_figure": str(fig), "routing_full_checkpoint": str(self.expert_paths(ctx)[0]),
                        "routing_pruned_checkpoint": str(self.expert_paths(ctx)[1])})
        ctx.tracker.table(f"routing/curve_{self.name}", list(curve.columns), curve.astype(object).values.tolist())
        ctx.tracker.table(f"routing/summary_{self.name}", list(summary.columns), summary.astype(object).values.tolist())
        ctx.tracker.image(f"routing/pareto_{self.name}", fig)
        log.info("routing %s: esc %.1f%% acc %.2f%% (full %.2f%%, pruned %.2f%%) cost mixture %.3f× cascade %.3f×",
                 self.policy.name, 100 * metrics["routing_escalation_rate"], metrics["routing_acc"],
                 metrics["routing_full_acc"], metrics["routing_pruned_acc"], metrics["routing_cost_mixture"],
                 metrics["routing_cost_cascade"])
        return metrics

    def route(self, full: nn.Module, pruned: nn.Module, val_loader, test_loader, example: torch.Tensor, device):
        """Costs from measured MACs, one pass of each expert per split, then ``analyse``."""
        c_full, c_pruned = expert_costs(full, pruned, example)
        val = collect_split(pruned, full, val_loader, device)
        test = collect_split(pruned, full, test_loader, device)
        return self.analyse(val, test, c_full, c_pruned)

    def analyse(self, val: SplitOutputs, test: SplitOutputs, c_full: float, c_pruned: float):
        """Everything that needs only cached outputs and costs: (metrics, curves CSV, summary table)."""
        full_val = 100.0 * val.full_correct.double().mean().item()
        full_test = 100.0 * test.full_correct.double().mean().item()
        pruned_test = 100.0 * test.pruned_correct.double().mean().item()
        rel = c_pruned / c_full
        curves, rows, chosen = [], [], {}
        for name in [self.policy_name] + list(self.compare):
            policy = self.policy if name == self.policy_name else create_policy(name, seed=self.seed)
            curve, sel = evaluate_policy(policy, val, test, c_full, c_pruned, self.n_points, self.seed)
            ref = 100.0 * sel.full_correct.double().mean().item()
            idx = select_point(curve["escalation_val"], curve["acc_val"], ref, self.tolerance, self.selection,
                               self.target_rate)
            curve["chosen"] = np.arange(len(curve)) == idx
            curves.append(curve)
            chosen[policy.name] = (idx, curve.iloc[idx])
        main_idx, pt = chosen[self.policy.name]
        main_curve = curves[0]
        p = float(pt["escalation_test"])
        # the paper-format summary: static full / static pruned / random at the chosen rate / adaptive
        rows.append({"method": "static full", "acc": full_test, "escalation": 1.0, "cost_mixture": 1.0,
                     "cost_cascade": 1.0})
        rows.append({"method": "static pruned", "acc": pruned_test, "escalation": 0.0, "cost_mixture": rel,
                     "cost_cascade": rel})
        rows.append({"method": "random (matched rate, expected)", "acc": float(random_expected_accuracy(p, full_test, pruned_test)),
                     "escalation": p, "cost_mixture": float(pt["cost_mixture"]), "cost_cascade": float(pt["cost_cascade"])})
        for name, (_, row) in chosen.items():
            label = f"adaptive ({name})" if name == self.policy.name else f"compare: {name}"
            rows.append({"method": label, "acc": float(row["acc_test"]),
                         "escalation": float(row["escalation_test"]), "cost_mixture": float(row["cost_mixture"]),
                         "cost_cascade": float(row["cost_cascade"]), "tau": float(row["tau"]),
                         "auroc": float(row["auroc_test"])})
        summary = pd.DataFrame(rows)
        # optimistic reference: the cheapest test point within tolerance of the full model (selected on test)
        ok = main_curve[main_curve["acc_test"] >= full_test - self.tolerance - 1e-9]
        tm = ok.loc[ok["escalation_test"].idxmin()] if len(ok) else None
        # per test image at the chosen τ: routed vs full correctness (worse / same / better), for CIs over images
        esc = (self.policy.score(test) < float(pt["tau"])).cpu()
        routed = torch.where(esc, test.full_correct, test.pruned_correct)
        diff = routed.int() - test.full_correct.int()
        counts = [int((diff == v).sum()) for v in (-1, 0, 1)]
        aurocs = {f"routing_auroc_{n}": evaluate_auroc(n, test, self.seed) for n in ZERO_COST
                  if n != "l1" or test.pruned_features is not None}
        metrics = {
            "routing_policy": self.policy.name, "routing_selection": self.selection,
            "routing_point_index": int(main_idx), "routing_tau": float(pt["tau"]),
            "routing_escalation_rate": p, "routing_escalation_rate_val": float(pt["escalation_val"]),
            "routing_acc": float(pt["acc_test"]), "routing_acc_val": float(pt["acc_val"]),
            "routing_full_acc": full_test, "routing_full_acc_val": full_val, "routing_pruned_acc": pruned_test,
            "routing_matches_full": bool(pt["acc_test"] >= full_test - self.tolerance - 1e-9),
            "routing_cost_mixture": float(pt["cost_mixture"]), "routing_cost_cascade": float(pt["cost_cascade"]),
            "routing_macs_full": c_full, "routing_macs_pruned": c_pruned, "routing_mac_ratio": rel,
            "routing_break_even_rate": break_even_rate(c_full, c_pruned),
            "routing_random_acc": float(random_expected_accuracy(p, full_test, pruned_test)),
            "routing_auroc": float(pt["auroc_test"]), "routing_n_points": int(len(main_curve)),
            "routing_testmatch_escalation_rate": None if tm is None else float(tm["escalation_test"]),
            "routing_testmatch_cost_cascade": None if tm is None else float(tm["cost_cascade"]),
            "routing_testmatch_cost_mixture": None if tm is None else float(tm["cost_mixture"]),
            "routing_delta_counts": counts, "routing_escalated": int(esc.sum()), "routing_test_n": int(len(esc)),
            **aurocs,
        }
        return metrics, pd.concat(curves, ignore_index=True), summary

    def time_cascade(self, ctx, full: nn.Module, pruned: nn.Module, tau: float) -> dict:
        bs = int(self.timing_batch_size)
        batches, n = [], 0
        for x, y in ctx.data.loader("test", bs):
            if self.timing_max_samples is not None and n >= self.timing_max_samples:
                break
            batches.append((x.to(ctx.device), y.to(ctx.device)))
            n += len(y)

        def gate(out: SplitOutputs) -> torch.Tensor:
            return self.policy.score(out).to(out.labels.device) < tau

        return cascade_wallclock(pruned, full, batches, gate, repeats=self.timing_repeats)


def evaluate_auroc(name: str, out: SplitOutputs, seed: int = 0) -> float:
    """AUROC of a zero-cost signal for "the pruned expert is wrong" on ``out``."""
    s = create_policy(name, seed=seed).score(out).numpy()
    return auroc(-s, ~out.pruned_correct.numpy())
