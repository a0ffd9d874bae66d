"""The stage pipeline: pretrain → calibrate → prune → finetune → evaluate (→ route).

``run(cfg)`` validates the config, instantiates the method (``cfg.method._target_``), runs the
configured stages, writes one record to the results store, and logs to W&B. Dense models are cached
under a key of (dataset, model, pretrain recipe, seed) so a sweep trains each dense model once.
"""
from __future__ import annotations

import datetime as _dt
import logging
import re
import subprocess
import time
import uuid
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .checkpoint import config_key, load_model, save_model
from .config_check import validate
from .context import StageContext
from .data import create_dataset
from . import distributed
from .export import export_onnx
from .measure import channel_block, count_macs, latency_ms, layer_density, padded_macs, param_counts, speedups
from .method import Method
from .errors import CheckpointError, ConfigError, TrainingOutOfMemory, UserError
from .results import ResultsStore, complete_record
from .resume import Preempted, ResumeState, run_key, stage_seed
from .seeding import resolve_device, seed_everything
from .tracking import Tracker
from .train.trainer import is_out_of_memory

log = logging.getLogger(__name__)

class RunFailed(RuntimeError):
    """Raised after a failed run has been recorded; ``args[0]`` is the one-line error."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


#: a constructor called with a keyword it does not take, or without one it needs (a YAML key spelled wrong)
KEYWORD_ERROR = re.compile(r"unexpected keyword argument|missing \d+ required (keyword-only |positional )?argument")


def instantiate_component(node: DictConfig, key: str):
    """``instantiate`` a ``_target_`` node; a user error from the component's constructor (a bad hyperparameter,
    an unknown or missing keyword) becomes one ``ConfigError`` line naming the key, not Hydra's wrapper; any
    other exception is a bug and propagates with its traceback."""
    try:
        return instantiate(node)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, UserError) or (isinstance(cause, TypeError) and KEYWORD_ERROR.search(str(cause))):
            raise ConfigError(f"{key}: {cause}") from exc
        raise


def build_data(cfg: DictConfig, device: torch.device):
    d = OmegaConf.to_container(cfg.dataset, resolve=True)
    name = d.pop("name")
    root = d.pop("root", None) or cfg.data_root
    return create_dataset(name, root=root, seed=cfg.seed, device=device, target=d.pop("_target_", None), **d)


# -- stages ------------------------------------------------------------------------------------
def dense_cache_path(ctx: StageContext) -> Path:
    cfg = ctx.cfg
    key = config_key(OmegaConf.to_container(cfg.dataset, resolve=True),
                     OmegaConf.to_container(cfg.model, resolve=True),
                     OmegaConf.to_container(cfg.trainer.pretrain, resolve=True), cfg.seed)
    return ctx.results_dir / "cache" / "dense" / f"{cfg.dataset.name}-{cfg.model.name}-s{cfg.seed}-{key}.pt"


def stage_pretrain(ctx: StageContext, method: Method) -> None:
    """Train (or reuse from the cache) the dense model; record its test accuracy."""
    cache = dense_cache_path(ctx)
    if ctx.cfg.cache_dense and cache.exists():
        try:
            model, meta = load_model(cache, ctx.device)
        except CheckpointError as exc:  # move it aside so the next run retrains instead of failing again
            if distributed.is_main_process():
                cache.replace(cache.with_name(cache.name + ".corrupt"))
            raise CheckpointError(f"dense cache {cache} is corrupt; moved to {cache.name}.corrupt, "
                                  f"re-run to retrain it") from exc
        ctx.model = ctx.prepare(model)
        ctx.metrics["dense_test_acc"] = meta.get("test_acc")
        ctx.metrics["dense_curve_test_acc"] = meta.get("curve_test_acc")
        log.info("reusing cached dense model %s (test acc %.2f%%)", cache, meta.get("test_acc", float("nan")))
    else:
        ctx.model = ctx.build_model()
        curve = None
        if int(ctx.cfg.trainer.pretrain.epochs) > 0:
            curve = [h.get("test_acc") for h in ctx.fit(ctx.model, phase="pretrain").history]
        acc = ctx.evaluate(ctx.model)["acc"]
        ctx.metrics["dense_test_acc"] = acc
        ctx.metrics["dense_curve_test_acc"] = curve   # per-epoch test accuracy (the plateau check of the study)
        if distributed.is_main_process():
            save_model(cache, ctx.model, ctx.model_spec, {"test_acc": acc, "run_id": ctx.run_id,
                                                          "curve_test_acc": curve})
        log.info("dense model: test acc %.2f%% (cached at %s)", acc, cache)
    ctx.checkpoints["dense"] = cache


def stage_calibrate(ctx: StageContext, method: Method) -> None:
    method.calibrate(ctx)


def stage_prune(ctx: StageContext, method: Method) -> None:
    method.prune(ctx)
    if ctx.cfg.save_checkpoints:
        ctx.save_model("pruned", method.finalize(ctx.copy_model(ctx.model)))


def stage_finetune(ctx: StageContext, method: Method) -> None:
    result = method.finetune(ctx)
    if result is not None:
        ctx.metrics["test_acc_best"] = result.best_test_acc
        ctx.metrics["test_acc_at_best_val"] = result.test_at_best_val
        ctx.metrics["val_acc_best"] = result.best_val_acc
        # final-epoch validation accuracy: what the study's LR selection reads (never test)
        ctx.metrics["val_acc"] = result.history[-1].get("val_acc") if result.history else None
        ctx.metrics["curve_test_acc"] = [h.get("test_acc") for h in result.history]
        ctx.metrics["curve_val_acc"] = [h.get("val_acc") for h in result.history]


def stage_evaluate(ctx: StageContext, method: Method) -> None:
    """Finalize, then measure accuracy, sparsity, params, MACs and latency of the final model."""
    model = method.finalize(ctx.model)
    ctx.model = model
    m = ctx.metrics
    test = ctx.evaluate(model)
    m["test_acc"] = test["acc"]
    m["test_loss"] = test["loss"]
    if "acc5" in test:
        m["test_acc5"] = test["acc5"]
    if m.get("test_acc_best") is None or not m["test_acc_best"] >= m["test_acc"]:
        m["test_acc_best"] = max(m.get("test_acc_best") or float("-inf"), m["test_acc"])
    if m.get("val_acc") is not None:   # the LR selection reads the final model's (after finalize: snap, removal)
        m["val_acc_train_end"] = m["val_acc"]
        m["val_acc"] = ctx.evaluate(model, "val")["acc"]
    counts = param_counts(model)
    dense_prunable = (ctx.dense_counts or counts)["prunable_total"]
    m.update({k: counts[k] for k in ("params_total", "params_nonzero")})
    m["sparsity"] = 1.0 - counts["prunable_nonzero"] / max(dense_prunable, 1)
    m["layer_density"] = layer_density(model)
    example = ctx.data.example_input(1)
    macs = count_macs(model, example)
    m["macs_dense"], m["macs_effective"] = macs["macs_dense"], macs["macs_effective"]
    m["channel_block"] = block = channel_block(ctx.cfg.measure.channel_block)
    m["macs_padded"] = padded_macs(model, example, block)
    if m.get("dense_macs"):   # what the pruning buys, as ratios to the dense model (> 1: smaller)
        m["mac_reduction"] = m["dense_macs"] / max(m["macs_effective"], 1)
        m["param_reduction"] = m["dense_params"] / max(m["params_nonzero"], 1)
        m["padded_mac_reduction"] = m["dense_macs_padded"] / max(m["macs_padded"], 1)
    reps = int(ctx.cfg.measure.latency_repeats)
    if reps > 0:
        m["latency_ms_bs1"] = latency_ms(model, example, repeats=reps)
        m["latency_ms_bs64"] = latency_ms(model, ctx.data.example_input(64), repeats=reps)
        if ctx.dense_model is not None:   # what the pruning buys in time: both models in their best form, here
            batches = [int(b) for b in ctx.cfg.measure.speedup_batches]
            m.update(speedups(ctx.dense_model, model, {b: ctx.data.example_input(b) for b in batches}, reps,
                              forms=list(ctx.cfg.measure.speedup_forms)))
            if "speedup_bs64" in m:
                warn_slow(m)
    m["device"] = str(ctx.device)
    if ctx.cfg.save_checkpoints:
        ctx.save_model("final", model, {"test_acc": m["test_acc"], "sparsity": m["sparsity"]})
    if ctx.cfg.measure.get("export") and distributed.is_main_process():   # the deployable form, checked
        out = export_onnx(ctx.copy_model(model), example, ctx.run_dir / "model.onnx")
        m["export_onnx"], m["export_max_abs_diff"] = out["path"], out["max_abs_diff"]
        log.info("exported %s (ONNX Runtime vs PyTorch: max |diff| %.1e)", out["path"], out["max_abs_diff"])


def stage_route(ctx: StageContext, method: Method) -> None:
    router = ctx.cfg.get("routing")
    if router is None or "_target_" not in router:
        return
    ctx.metrics.update(instantiate_component(router, "routing").run(ctx) or {})


STAGES = {"pretrain": stage_pretrain, "calibrate": stage_calibrate, "prune": stage_prune,
          "finetune": stage_finetune, "evaluate": stage_evaluate, "route": stage_route}


# -- the run -----------------------------------------------------------------------------------
def summary_table(metrics: dict) -> str:
    rows = [("test acc (%)", metrics.get("dense_test_acc"), metrics.get("test_acc")),
            ("sparsity", 0.0, metrics.get("sparsity")),
            ("params (non-zero)", metrics.get("dense_params"), metrics.get("params_nonzero")),
            ("MACs (effective)", metrics.get("dense_macs"), metrics.get("macs_effective")),
            ("latency bs1 (ms)", metrics.get("dense_latency_ms_bs1"), metrics.get("latency_ms_bs1")),
            ("latency bs64 (ms)", metrics.get("dense_latency_ms_bs64"), metrics.get("latency_ms_bs64")),
            ("speed-up bs1", 1.0 if "speedup_bs1" in metrics else None, metrics.get("speedup_bs1")),
            ("speed-up bs64", 1.0 if "speedup_bs64" in metrics else None, metrics.get("speedup_bs64"))]

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 1 else f"{v:,.2f}"
        return f"{v:,}"
    lines = [f"| {'':18} | {'dense':>14} | {'final':>14} |", f"|{'-' * 20}|{'-' * 16}|{'-' * 16}|"]
    lines += [f"| {name:18} | {fmt(d):>14} | {fmt(f):>14} |" for name, d, f in rows]
    return "\n".join(lines)


def measure_dense(ctx: StageContext) -> None:
    """Dense reference numbers for the summary (params, MACs, latency) before any pruning."""
    if ctx.model is None:
        return
    counts = param_counts(ctx.model)
    ctx.dense_counts = counts
    ctx.metrics["dense_params"] = counts["params_total"]
    ctx.metrics["dense_macs"] = count_macs(ctx.model, ctx.data.example_input(1))["macs_dense"]
    ctx.metrics["dense_macs_padded"] = padded_macs(ctx.model, ctx.data.example_input(1),
                                                   channel_block(ctx.cfg.measure.channel_block))
    reps = int(ctx.cfg.measure.latency_repeats)
    if reps > 0 and ctx.cfg.measure.dense_latency:
        ctx.metrics["dense_latency_ms_bs1"] = latency_ms(ctx.model, ctx.data.example_input(1), repeats=reps)
        ctx.metrics["dense_latency_ms_bs64"] = latency_ms(ctx.model, ctx.data.example_input(64), repeats=reps)
        ctx.dense_model = ctx.copy_model(ctx.model)   # timed again beside the final model (speedup_bs*)


def warn_slow(m: dict) -> None:
    """Say so when the measured batch-64 speed-up is below half the MAC reduction, and why that usually is."""
    if m.get("mac_reduction", 1.0) > 1.05 and m["speedup_bs64"] < 0.5 * m["mac_reduction"]:
        if m.get("params_total") != m.get("dense_params"):
            why = "narrow layers cost what the kernels' channel block costs (see flowprune bench agf)"
        elif m["speedup_form_bs64"].startswith("sparse"):
            why = "CSR kernels recover only part of unstructured sparsity (see flowprune bench sparse)"
        else:
            why = "the zeros of unstructured sparsity run on the same dense kernels"
        log.warning("measured speed-up %.2fx at batch 64 (%s) is below half the MAC reduction %.2fx (%.2fx with "
                    "output widths padded to the kernels' channel block): %s", m["speedup_bs64"],
                    m["speedup_form_bs64"], m["mac_reduction"], m.get("padded_mac_reduction", float("nan")), why)


def run(cfg: DictConfig) -> dict:
    """Run every configured stage and return the written record (raises ``RunFailed`` on failure)."""
    started = _now()
    run_id = f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    store = ResultsStore(cfg.results_dir)
    record = {"run_id": run_id, "experiment": cfg.get("experiment_name", "main"), "status": "failed",
              "error": None, "started": started, "git_commit": git_commit(), "seed": cfg.get("seed"),
              "config": OmegaConf.to_container(cfg, resolve=False), "metrics": {}, "stage_seconds": {}}
    tracker = None
    resume: ResumeState | None = None
    main = True
    study = str(cfg.get("store", "runs")) == "study"
    try:
        validate(cfg)
        record["config"] = OmegaConf.to_container(cfg, resolve=True)
        record["run_key"] = run_key(cfg)
        store.check_writable()
        if cfg.get("skip_done", False):
            done = store.done(record["run_key"])
            if done is not None:
                log.info("skip_done: run key %s already has an ok record (%s, test acc %s); not re-running",
                         record["run_key"], done.get("run_id"), (done.get("metrics") or {}).get("test_acc"))
                return done
        seed_everything(int(cfg.seed), bool(cfg.deterministic))
        device = distributed.init_from_env(resolve_device(str(cfg.device)))
        main = distributed.is_main_process()
        resume = ResumeState(cfg.results_dir, run_key(cfg), enabled=bool(cfg.get("resume", True)), writer=main)
        if main:
            run_id, started = resume.begin(run_id, started)
            resume.state.setdefault("run_id", run_id)
        run_id, started, resume.state = distributed.broadcast_object((run_id, started, resume.state))
        record.update(run_id=run_id, started=started, attempts=resume.state.get("attempts", 1))
        method = instantiate_component(cfg.method, "method")
        if not isinstance(method, Method):
            raise ConfigError(f"method._target_={cfg.method._target_} is not a experiments.method.Method subclass")
        data = build_data(cfg, device)
        lg = cfg.logger
        tracker = Tracker(mode=lg.mode if main else "disabled", project=lg.project, entity=lg.get("entity"),
                          group=lg.get("group") or record["experiment"], job_type=method.name,
                          name=run_id, tags=list(lg.get("tags") or []), config=record["config"],
                          results_dir=Path(cfg.results_dir))
        ctx = StageContext(cfg=cfg, data=data, device=device, tracker=tracker, run_id=run_id,
                           results_dir=Path(cfg.results_dir), metrics=record["metrics"], resume=resume)
        stages = list(cfg.stages)
        if "pretrain" not in stages or not method.needs_dense:
            if "pretrain" in stages:  # at-init methods still get the dense accuracy for reference
                t0 = time.perf_counter()
                ctx.stage = "pretrain"
                resume.start_stage("pretrain")
                stage_pretrain(ctx, method)
                record["stage_seconds"]["pretrain"] = time.perf_counter() - t0
                stages.remove("pretrain")
            seed_everything(stage_seed(int(cfg.seed), "init"))
            ctx.model = ctx.build_model()
        for name in stages:
            if name != "pretrain":
                # every later stage starts from its own seed, so its randomness does not depend on whether
                # the dense model was trained or loaded from the cache (and a resumed run replays it exactly)
                seed_everything(stage_seed(int(cfg.seed), name))
                if ctx.dense_counts is None:
                    measure_dense(ctx)  # reference numbers of the model before pruning
            t0 = time.perf_counter()
            log.info("stage %s", name)
            ctx.stage = name
            resume.start_stage(name)
            STAGES[name](ctx, method)
            record["stage_seconds"][name] = time.perf_counter() - t0
            resume.stage_done(name, record["stage_seconds"][name])
        record["checkpoints"] = {k: str(v) for k, v in ctx.checkpoints.items()}
        record["status"] = "ok"
    except Preempted:  # checkpoint written; no record: the requeued job resumes and records the run
        if tracker is not None:
            tracker.finish(exit_code=1)
        if resume is not None:
            resume.release()
        distributed.shutdown()
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then re-raised as RunFailed
        if is_out_of_memory(exc) and not isinstance(exc, TrainingOutOfMemory):
            exc = TrainingOutOfMemory(f"out of memory ({one_line(exc)[:80]}); lower trainer.batch_size="
                                      f"{cfg.trainer.get('batch_size')} or trainer.eval_batch_size="
                                      f"{cfg.trainer.get('eval_batch_size')}")
        record["error"] = one_line(exc)
        record["finished"] = _now()
        if resume is not None:
            resume.release()  # the folder stays: re-running resumes (or resume=false starts over)
        distributed.shutdown()
        if not main:
            raise RunFailed(record["error"]) from None
        if not isinstance(exc, PermissionError):
            try:
                store.append(record, study=study)
            except OSError as write_exc:
                log.error("%s", write_exc)
        if tracker is not None:
            tracker.finish(exit_code=1)
        if isinstance(exc, UserError):   # one line; anything else is a bug and keeps its traceback
            raise RunFailed(record["error"]) from None
        raise RunFailed(record["error"]) from exc
    record["finished"] = _now()
    distributed.shutdown()
    if not main:  # rank 0 writes the record, W&B summary and removes the resume folder
        return complete_record(record)
    try:
        written = store.append(record, study=study)
    except OSError as exc:  # the run finished but its record could not be written: say so, keep resume state
        if tracker is not None:
            tracker.finish(exit_code=1)
        raise RunFailed(one_line(exc)) from None
    resume.finish()
    m = record["metrics"]
    tracker.summary({k: v for k, v in m.items() if isinstance(v, (int, float))})
    tracker.finish()
    log.info("run %s finished: test acc %.2f%%, sparsity %.4f\n%s", run_id, m.get("test_acc", float("nan")),
             m.get("sparsity") or 0.0, summary_table(m))
    return written
