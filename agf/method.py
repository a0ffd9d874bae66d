"""``method=structured``: calibrate → score → remove channels physically → fine-tune (identical per scorer).

``target_sparsity`` is, for ``target_kind=channels``, the fraction of channels removed from every prunable
layer (sparsity=75 keeps 25 % width: the "75 % compression stress test"); for ``macs``/``params`` the
reduction of that cost, reached by bisection on the uniform channel ratio; for ``latency`` the reduction of the
measured batch-64 latency (deployment form), the same bisection over measured models (with ``round_to=auto`` it
moves over the widths this CPU's conv kernels compute in one block: 16 with AVX-512, 8 with AVX2).
"""
from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from experiments import options
from experiments.errors import ConfigError
from experiments.measure import channel_block
from experiments.method import Method
from experiments.sparsity.removal import channel_ratio_for, remove_channels
from experiments.sparsity.selection import select_keep
from experiments.sparsity.units import find_units
from experiments.stats import auroc

from . import analysis
from .calibration import Calibrator
from .options import Calibration
from .scorers import SCORERS, Scorer, create_scorer

log = logging.getLogger(__name__)



def plain(x):
    return OmegaConf.to_container(x, resolve=True) if isinstance(x, DictConfig) else x


def reinitialise(model: nn.Module) -> None:
    """Fresh random weights for every module (the "trained from scratch" control keeps only the shape)."""
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for n, p in model.named_parameters(recurse=True):
        if n.endswith(("cls_token", "pos_embed")):
            nn.init.trunc_normal_(p, std=0.02)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them (cumulative mean) on ``loader``."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    was = model.training
    saved = {m: m.momentum for m in bns}
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for x, _ in loader:
        model(x)
    for m in bns:
        m.momentum = saved[m]
    model.train(was)


class StructuredPruning(Method):
    def __init__(self, name: str = "structured", scorer="agf", target_sparsity: float = 0.75,
                 target_kind: str = "channels", global_ranking: bool = False, normalize: str = "mean",
                 iterative_steps: int = 1, iterative_finetune_epochs: int = 0,
                 calibration: Calibration | dict | None = None,
                 include_residual: bool = False, ignore: list | None = None, prune_heads: bool = False,
                 round_to: int | str = 1, finetune: bool = True, from_scratch: bool = False,
                 save_scores: bool = True, signal_batches: int = 0, bn_recalibration_batches: int = 0,
                 seed: int = 0, lr: float | None = None, scratch_epochs: int | None = None):
        super().__init__(name=name, finetune=finetune, lr=lr)
        if scratch_epochs is not None and int(scratch_epochs) < 1:
            raise ConfigError(f"method.scratch_epochs={scratch_epochs} must be >= 1 (or null: the pretrain budget)")
        self.scratch_epochs = None if scratch_epochs is None else int(scratch_epochs)
        if isinstance(scorer, str):
            scorer = create_scorer(scorer, seed=seed)
        elif isinstance(scorer, (dict, DictConfig)):
            scorer = create_scorer(**{k: v for k, v in plain(scorer).items() if k != "_target_"})
        if not isinstance(scorer, Scorer):
            raise ConfigError(f"method.scorer must name a scorer ({sorted(SCORERS)})")
        if not 0.0 <= float(target_sparsity) < 1.0:
            raise ConfigError(f"sparsity.target={target_sparsity} must be in [0, 1) for structured pruning")
        if target_kind not in ("channels", "macs", "params", "latency"):
            raise ConfigError(f"method.target_kind={target_kind!r}; use channels, macs, params or latency")
        self.scorer, self.target, self.target_kind = scorer, float(target_sparsity), target_kind
        self.global_ranking, self.normalize = bool(global_ranking), normalize
        self.iterative_steps, self.iterative_finetune_epochs = int(iterative_steps), int(iterative_finetune_epochs)
        self.calib = options.build(Calibration, plain(calibration), "method.calibration")
        self.include_residual, self.ignore, self.prune_heads = include_residual, list(plain(ignore) or []), prune_heads
        self.round_to, self.from_scratch = channel_block(round_to, "method.round_to"), bool(from_scratch)
        self.do_finetune = self.do_finetune or self.from_scratch   # the from-scratch control always trains
        self.save_scores, self.signal_batches = bool(save_scores), int(signal_batches)
        self.bn_recalibration_batches = int(bn_recalibration_batches)
        self.units: list = []
        self.stats: dict = {}

    # -- calibration --------------------------------------------------------------------------------
    def _units(self, ctx):
        return find_units(ctx.model, ctx.data.example_input(1), self.include_residual, self.ignore, self.prune_heads)

    def _calibrate(self, ctx, batches: int | None = None, seed_offset: int | None = None) -> dict:
        c = self.calib
        n = int(batches or c.batches)
        loader = ctx.data.calibration_loader(n, int(c.batch_size), seed_offset=int(seed_offset or c.seed_offset))
        if len(loader) < n:
            log.warning("calibration: %d batches of %d asked, the train split gives %d (lower "
                        "method.calibration.batch_size for a longer calibration)", n, int(c.batch_size), len(loader))
        ctx.metrics["calibration_batches"] = len(loader)
        return Calibrator(ctx.model, self.units, mode=c.mode, trajectory_lr=float(c.trajectory_lr),
                          label_mode=c.label_mode, position=c.position).run(loader)

    def calibrate(self, ctx) -> None:
        self.units = self._units(ctx)
        t0 = time.perf_counter()
        self.stats = self._calibrate(ctx) if self.scorer.needs != "none" or self.save_scores else {}
        ctx.metrics["calibration_seconds"] = time.perf_counter() - t0
        ctx.metrics["prunable_units"] = len(self.units)
        if self.save_scores:
            self._save_scores(ctx)
        if self.signal_batches > 0:
            self._signal_on(ctx, "dense")

    def scores(self, scorer: Scorer | None = None, stats: dict | None = None) -> dict[str, torch.Tensor]:
        sc = (scorer or self.scorer).bind(self.units, self.stats if stats is None else stats)
        out = {u.name: sc.unit_scores(u) for u in self.units}
        for u in self.units:   # one score per channel, or removal would index the wrong channels
            if out[u.name].numel() != u.num_channels:
                raise RuntimeError(f"scorer {sc.name}: {out[u.name].numel()} scores for {u.num_channels} channels "
                                   f"of {u.name}")
        return out

    def _save_scores(self, ctx) -> None:
        """Every scorer's per-unit scores from this one calibration (+ disjoint calibration subsets)."""
        out = {"scorers": {}, "splits": []}
        for name in SCORERS:
            out["scorers"][name] = self.scores(create_scorer(name, seed=self.scorer.seed))
        splits = int(self.calib.splits)
        if splits > 1:   # disjoint subsets: consecutive batches of one shuffled pass without replacement
            T, bs = int(self.calib.batches), int(self.calib.batch_size)
            n_train = ctx.data.split_size("train")
            if T * splits * bs > n_train:   # a small train split: smaller batches keep the subsets disjoint
                bs = max(1, n_train // (T * splits))
                T = min(T, n_train // (splits * bs))
                if T < 1:
                    raise ConfigError(f"method.calibration.splits={splits} needs at least {splits} training images "
                                     f"for disjoint subsets; the train split has {n_train}")
                log.warning("calibration splits: %d train images; %d subsets of %d batches of %d",
                            n_train, splits, T, bs)
            batches = list(ctx.data.calibration_loader(T * splits, bs, seed_offset=int(self.calib.seed_offset) + 7))
            for s in range(splits):
                st = Calibrator(ctx.model, self.units, mode=self.calib.mode).run(batches[s * T:(s + 1) * T])
                out["splits"].append({n: self.scores(create_scorer(n, seed=self.scorer.seed), st)
                                      for n in SCORERS if SCORERS[n].needs != "none"})
        out["weight_l1"] = self.scores(create_scorer("l1"))
        if self.target_kind == "channels":   # top-k sets at the kept fraction this run prunes to
            ctx.metrics.update(analysis.selection_summary(out["scorers"], out["splits"], 1.0 - self.target))
        path = ctx.run_dir / "unit_scores.pt"
        torch.save(out, path)
        ctx.metrics["scores_file"] = str(path)

    # -- pruning ------------------------------------------------------------------------------------
    def prune(self, ctx) -> None:
        example = ctx.data.example_input(1)
        keep_final = 1.0 - self.target
        for step in range(1, self.iterative_steps + 1):
            if step > 1:
                if self.iterative_finetune_epochs > 0:
                    ctx.fit(ctx.model, phase="finetune", epochs=self.iterative_finetune_epochs)
                self.units = self._units(ctx)
                self.stats = self._calibrate(ctx, seed_offset=int(self.calib.seed_offset) + step)
            scores = self.scores()
            # removal fraction of the *current* width so that after step i the kept fraction is keep^(i/n)
            frac = keep_final ** (1.0 / self.iterative_steps)
            ratio = 1.0 - frac
            if self.target_kind != "channels":
                target = 1.0 - (1.0 - self.target) ** (step / self.iterative_steps)
                ratio = channel_ratio_for(ctx.model, example, scores,
                                          self._step_cost_target(ctx, target), self.target_kind,
                                          self.include_residual, self.ignore, self.prune_heads,
                                          self.global_ranking, self.normalize, round_to=self.round_to)
            keep = select_keep(scores, ratio, self.global_ranking, self.normalize, self.round_to)
            remove_channels(ctx.model, example, self.units, keep)
        ctx.metrics["kept_channels"] = {u.name: u.num_channels for u in self.units}
        ctx.metrics["acc_after_prune"] = ctx.evaluate(ctx.model)["acc"]
        if self.bn_recalibration_batches > 0:   # not in the paper: re-estimate BN statistics, no weight update
            recalibrate_bn(ctx.model, ctx.data.calibration_loader(self.bn_recalibration_batches,
                                                                  int(self.calib.batch_size), seed_offset=77))
            ctx.metrics["acc_after_prune_bn_recal"] = ctx.evaluate(ctx.model)["acc"]
        log.info("after pruning (%s, %.2f): test acc %.2f%%", self.scorer.name, self.target,
                 ctx.metrics["acc_after_prune"])

    def _step_cost_target(self, ctx, overall: float) -> float:
        """Reduction relative to the current model that reaches ``overall`` relative to the dense one."""
        from experiments.sparsity.removal import cost
        now = cost(ctx.model, ctx.data.example_input(1), self.target_kind)   # measured once: latency is noisy
        self.__dict__.setdefault("_dense_cost", now)
        return max(0.0, 1.0 - (1.0 - overall) * self._dense_cost / now)

    # -- fine-tuning --------------------------------------------------------------------------------
    def fit_options(self, ctx) -> dict:
        if self.from_scratch:   # the pruned architecture, re-initialised, trained with the pretrain recipe
            return {"phase": "pretrain", "optimizer": self.optimizer_overrides(), "epochs": self.scratch_epochs}
        return super().fit_options(ctx)

    def before_finetune(self, ctx) -> None:
        if self.from_scratch:
            reinitialise(ctx.model)
            ctx.metrics["from_scratch"] = True

    def after_finetune(self, ctx, result) -> None:
        if self.signal_batches > 0:
            self._signal_on(ctx, "pruned")

    # -- signal compression / routing-signal quality (spec §5) ------------------------------------------
    def _signal_on(self, ctx, which: str) -> None:
        """s(x) with predicted labels on ``signal_batches`` test batches; for the pruned model also the AUROC of
        s(x), max-softmax confidence and activation ℓ1 for predicting that the pruned model is wrong."""
        units = self._units(ctx)
        loader = ctx.data.loader("test", int(self.calib.batch_size), max_batches=self.signal_batches)
        cal = Calibrator(ctx.model, units, mode="eval", per_sample=True, label_mode="predicted")
        cal.run(loader)
        s, act_l1, logits = cal.signal_per_sample()
        rng = analysis.dynamic_range(s)
        ctx.metrics[f"signal_{which}_p99_p1"], ctx.metrics[f"signal_{which}_max_min"] = rng["p99_p1"], rng["max_min"]
        if which == "pruned":
            labels = torch.cat([y.cpu() for _, y in loader])
            wrong = logits.argmax(1) != labels
            conf = logits.softmax(1).max(1).values
            # higher score = more likely wrong: low confidence, high gradient signal, low activation energy
            ctx.metrics["auroc_wrong_confidence"] = auroc(-conf, wrong)
            ctx.metrics["auroc_wrong_signal"] = auroc(s, wrong)
            ctx.metrics["auroc_wrong_act_l1"] = auroc(-act_l1, wrong)
            ctx.metrics["pruned_error_rate_signal_set"] = float(wrong.double().mean())
