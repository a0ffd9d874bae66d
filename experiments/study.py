"""The study runner: one fair protocol for every comparison table, applied by a spec, not by hand.

A study spec (``conf/study/<name>.yaml``) names an experiment preset and a grid of cells (e.g. method ×
sparsity). For each spec the runner
1. trains the dense models, one per seed (``method=dense stages=[pretrain,evaluate]``; cached and shared by
   every study with the same dataset, model, recipe and seed), and the same recipe with 3/4 of the epochs
   (``plateau_check``): a model is converged when the last quarter of its budget adds < 0.3 points. (Under a
   cosine schedule the *in-run* curve always climbs at the end, where the LR anneals, so the budget is compared,
   not two epochs of one run);
2. runs every cell at every learning rate of ``lr_grid`` (``method.lr``) with the selection seed;
3. chooses each cell's LR by its final-epoch **validation** accuracy (:func:`choose_lr`; never test);
4. runs every cell at its chosen LR with every seed of ``seeds``; ``variants`` (e.g. Hyperflows without
   regrowth) run the matching cells with extra overrides at the same chosen LR; ``controls`` (fixed overrides,
   e.g. dense + the same fine-tuning) run at every seed without an LR search.
Records go to ``<results_dir>/store/<experiment>.jsonl`` (``store=study``) and every run is skipped when its
run key already has an ok record (``skip_done=true``), so a study continues where it stopped, across sessions
and machines. ``python -m experiments.study <name> [--dry-run] [--jobs 2]``.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from .results import ResultsStore

log = logging.getLogger("flowprune.study")
ROOT = Path(__file__).resolve().parents[1]
STUDY_DIR = ROOT / "conf" / "study"


@dataclass
class StudySpec:
    name: str
    experiment: str                                  # experiment=<preset>
    grid: dict[str, list] = field(default_factory=dict)
    lr_grid: list[float] = field(default_factory=list)
    select_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    dense: bool = True
    plateau_check: bool = True                       # also train the dense models with 3/4 of the epochs
    controls: list[list[str]] = field(default_factory=list)
    #: extra runs of the cells matching ``of`` (grid key -> value), at the LR chosen for that cell
    variants: list[dict] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)  # applied to every run of the study

    @classmethod
    def load(cls, name: str, study_dir: Path = STUDY_DIR) -> "StudySpec":
        path = study_dir / f"{name}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in study_dir.glob("*.yaml")))
            raise SystemExit(f"error: no study '{name}' ({path}); known: {known}")
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        grid = [float(v) for v in data.get("lr_grid") or []]
        if grid and (len(set(grid)) < 3 or max(grid) < 10 * min(grid)):
            raise SystemExit(f"error: {path}: lr_grid needs >= 3 values spanning >= 10x (the protocol), got {grid}")
        return cls(name=name, **data)

    def cells(self) -> list[list[str]]:
        """Every combination of the grid as a list of ``key=value`` overrides."""
        if not self.grid:
            return []
        keys = list(self.grid)
        return [[f"{k}={v}" for k, v in zip(keys, values)] for values in itertools.product(*self.grid.values())]

    def base(self) -> list[str]:
        return [f"experiment={self.experiment}", "store=study", "skip_done=true", *self.overrides]


def compose(overrides: list[str]):
    """The config ``run.py`` would compose from ``overrides`` (no Hydra run dir is made)."""
    from hydra import compose as _compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .cli import quote_numeric_options

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return _compose(config_name="config", overrides=quote_numeric_options(overrides))


def key_of(overrides: list[str]) -> str:
    from .resume import run_key

    return run_key(compose(overrides))


def plateau_epochs(cfg) -> int:
    """3/4 of the dense budget (the plateau check's shorter run)."""
    return max(1, round(0.75 * int(cfg.trainer.pretrain.epochs)))


def done_records(results_dir: str | Path) -> dict[str, dict]:
    """run key -> the last ok record."""
    return ResultsStore(results_dir).done_by_key()


def choose_lr(val_by_lr: dict[float, float | None]) -> float | None:
    """The LR with the highest final validation accuracy (ties: the smaller LR); None until every LR has one."""
    if not val_by_lr or any(v is None for v in val_by_lr.values()):
        return None
    return max(sorted(val_by_lr), key=lambda lr: (val_by_lr[lr], -lr))


def selection(spec: StudySpec, results_dir: str | Path, done: dict | None = None) -> list[dict]:
    """Per cell: the validation accuracy of each LR at the selection seed and the chosen LR (None if missing)."""
    done = done_records(results_dir) if done is None else done
    rows = []
    for cell in spec.cells():
        vals = {}
        for lr in spec.lr_grid:
            rec = done.get(key_of([*spec.base(), *cell, f"method.lr={lr}", f"seed={spec.select_seed}",
                                   f"results_dir={results_dir}"]))
            vals[float(lr)] = None if rec is None else (rec.get("metrics") or {}).get("val_acc")
        rows.append({"cell": cell, "val_by_lr": vals, "lr": choose_lr(vals)})
    return rows


@dataclass
class Launcher:
    """Runs ``run.py -m`` sweeps (``jobs`` processes at a time, one thread each) or prints them (dry run)."""

    results_dir: str
    jobs: int = 2
    dry_run: bool = False
    python: str = sys.executable
    log_file: Path | None = None

    def __call__(self, overrides: list[str], sweep: dict[str, list]) -> None:
        args = [*overrides, f"results_dir={self.results_dir}", "trainer.progress=false"]
        args += [f"{k}={','.join(map(str, v))}" for k, v in sweep.items()]
        if self.jobs > 1:
            args += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={self.jobs}"]
        cmd = [self.python, str(ROOT / "run.py"), "-m", *args]
        print("$ OMP_NUM_THREADS=1 python run.py " + " ".join(shlex.quote(c) for c in cmd[3:]), flush=True)
        if self.dry_run:
            return
        t0 = time.time()
        env = {**os.environ, "OMP_NUM_THREADS": "1" if self.jobs > 1 else os.environ.get("OMP_NUM_THREADS", "2")}
        out = open(self.log_file, "a") if self.log_file else None
        try:
            subprocess.run(cmd, cwd=ROOT, env=env, check=False, stdout=out, stderr=subprocess.STDOUT if out else None)
        finally:
            if out:
                out.close()
        print(f"  ({time.time() - t0:.0f} s)", flush=True)


def missing(overrides: list[str], seeds: list[int], done: dict, results_dir: str) -> list[int]:
    return [s for s in seeds if key_of([*overrides, f"seed={s}", f"results_dir={results_dir}"]) not in done]


def run_study(spec: StudySpec, launch: Launcher) -> list[dict]:
    rd = launch.results_dir
    base = spec.base()
    if spec.dense:
        dense = [*base, "method=dense", "stages=[pretrain,evaluate]"]
        todo = missing(dense, spec.seeds, done_records(rd), rd)
        if todo:
            launch(dense, {"seed": todo})
        if spec.plateau_check:
            short = [*dense, f"trainer.pretrain.epochs={plateau_epochs(compose(dense))}"]
            todo = missing(short, spec.seeds, done_records(rd), rd)
            if todo:
                launch(short, {"seed": todo})
    if spec.lr_grid:
        done = done_records(rd)
        todo = [cell for cell in spec.cells() for lr in spec.lr_grid
                if missing([*base, *cell, f"method.lr={lr}"], [spec.select_seed], done, rd)]
        if todo:   # one sweep over the whole grid at the selection seed (skip_done skips what exists)
            launch(base, {**spec.grid, "method.lr": spec.lr_grid,
                          "seed": [spec.select_seed]})
    if spec.grid and not spec.lr_grid:   # no LR search: the whole grid in one sweep
        done = done_records(rd)
        if any(missing([*base, *cell], spec.seeds, done, rd) for cell in spec.cells()):
            launch(base, {**spec.grid, "seed": spec.seeds})
    chosen = selection(spec, rd) if spec.lr_grid else []   # without an LR search the sweep above ran every cell
    done = done_records(rd)
    waiting = [row for row in chosen if row["lr"] is None]
    if waiting:
        print(f"  {len(waiting)} of {len(chosen)} cells wait for their LR-selection runs (missing or failed)", flush=True)
    for row in chosen:
        if row["lr"] is None:
            continue
        cell = [*base, *row["cell"], f"method.lr={row['lr']}"]
        todo = missing(cell, spec.seeds, done, rd)
        if todo:
            launch(cell, {"seed": todo})
        for variant in spec.variants:
            if all(f"{k}={v}" in row["cell"] for k, v in variant["of"].items()):
                extra = [*cell, *variant["overrides"]]
                todo = missing(extra, spec.seeds, done, rd)
                if todo:
                    launch(extra, {"seed": todo})
    for control in spec.controls:
        todo = missing([*base, *control], spec.seeds, done, rd)
        if todo:
            launch([*base, *control], {"seed": todo})
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run what is missing of a study (see experiments/study.py).")
    ap.add_argument("names", nargs="+", help=f"study names (conf/study/*.yaml): "
                    f"{', '.join(sorted(p.stem for p in STUDY_DIR.glob('*.yaml')))}")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--jobs", type=int, default=2, help="parallel runs (one thread each)")
    ap.add_argument("--dry-run", action="store_true", help="print the sweeps, run nothing")
    ap.add_argument("--log", default=None, help="append the runs' output to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in args.names:
        spec = StudySpec.load(name)
        print(f"# study {name} ({spec.experiment})", flush=True)
        chosen = run_study(spec, Launcher(args.results_dir, args.jobs, args.dry_run,
                                          log_file=Path(args.log) if args.log else None))
        for row in chosen:
            if spec.lr_grid and row["lr"] is not None:
                print(f"  {' '.join(row['cell'])}: lr {row['lr']} (val {row['val_by_lr']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
