"""The study runner: one fair protocol for every comparison table, applied by a spec, not by hand.

A study spec (``conf/study/<name>.yaml``) names an experiment preset and a grid of cells (e.g. method ×
sparsity). For each spec the runner
1. trains the dense models, one per seed (``method=dense stages=[pretrain,evaluate]``; cached and shared by
   every study with the same dataset, model, recipe and seed), and the same recipe with 3/4 of the epochs
   (``plateau_check``): a model is converged when the last quarter of its budget adds < 0.3 points. (Under a
   cosine schedule the *in-run* curve always climbs at the end, where the LR anneals, so the budget is compared,
   not two epochs of one run);
2. runs every cell at every learning rate of ``lr_grid`` (``method.lr``) with the selection seed;
3. chooses each cell's LR by its final-epoch **validation** accuracy (:func:`choose_lr`; never test); an LR whose
   training diverged (:func:`diverged`) is not chosen;
4. runs every cell at its chosen LR with every seed of ``seeds``; ``variants`` (e.g. Hyperflows without
   regrowth) run the matching cells with extra overrides at the same chosen LR; ``controls`` (fixed overrides,
   e.g. dense + the same fine-tuning) run at every seed without an LR search.
Records go to ``<results_dir>/store/<experiment>.jsonl`` (``store=study``). A point (one run) is done when the
store has an ok (or diverged) record that agrees with it on the study's axes and the protocol keys
(:class:`StudyIndex`), not on the whole config's hash, so the committed records keep counting when the config
layout changes; only the missing points are launched, one ``run.py`` process each, ``jobs`` at a time. A study
thus continues where it stopped, across sessions, machines and refactors.
``python -m experiments.study <name> [--dry-run] [--jobs 2]``.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from omegaconf import OmegaConf

from .results import ResultsStore
from .resume import KEY_EXCLUDE

log = logging.getLogger("flowprune.study")
ROOT = Path(__file__).resolve().parents[1]
STUDY_DIR = ROOT / "conf" / "study"
#: What fixes a point's protocol besides the study's own axes (a subtree is compared as a whole).
PROTOCOL_KEYS = ("experiment_name", "dataset.name", "dataset.val_size", "dataset.train_subset", "dataset.test_subset",
                 "dataset.augment", "model.name", "model.kwargs", "trainer.epochs", "trainer.batch_size",
                 "trainer.pretrain", "trainer.finetune", "sparsity.target")


def grid_overrides(key: str, value) -> list[str]:
    """One grid value as overrides: ``key=value``, or, where the value is a list, that list (an *arm*: several keys
    set together, e.g. ``arm: [[method=hyperflows_structured], [method=structured, scorer=agf]]``)."""
    return [str(o) for o in value] if isinstance(value, list) else [f"{key}={value}"]


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
    #: studies whose preset is this one's but for its name: their records count for the points they have in
    #: common (same dense models, budget and axes), so a shared point is run once (A2's 75 % cells are A1's)
    shares: list[str] = field(default_factory=list)
    #: run each cell at the LR that this other study chose on validation for the same cell (no LR search of its
    #: own: S1-route's experts are S1's cells at S1's choices), so no chosen LR is copied into a spec by hand
    lr_from: str | None = None

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
        if grid and data.get("lr_from"):
            raise SystemExit(f"error: {path}: lr_grid and lr_from exclude each other (lr_from takes the other "
                             f"study's chosen LRs); drop one")
        return cls(name=name, **data)

    def cells(self) -> list[list[str]]:
        """Every combination of the grid as a list of overrides (``key=value``; an arm's list as it is)."""
        if not self.grid:
            return []
        keys = list(self.grid)
        return [[o for k, v in zip(keys, values) for o in grid_overrides(k, v)]
                for values in itertools.product(*self.grid.values())]

    def base(self) -> list[str]:
        return [f"experiment={self.experiment}", "store=study", "skip_done=true", *self.overrides]

    def experiments(self) -> list[str]:
        """Whose records may count for this study: its own experiment first, then those of ``shares``."""
        return [self.experiment, *(StudySpec.load(name).experiment for name in self.shares)]

    def identity_keys(self) -> list[str]:
        """The config keys that tell this study's points apart: every key it overrides, and the protocol's."""
        overridden = [*(o for k, vs in self.grid.items() for v in vs for o in grid_overrides(k, v)), *self.overrides,
                      *(o for v in self.variants for o in v["overrides"]), *(o for c in self.controls for o in c)]
        keys = {o.split("=", 1)[0].lstrip("+~") for o in overridden} | {"seed", "method", "method.lr", "stages"}
        keys = {k for k in keys if k.split(".")[0] not in KEY_EXCLUDE}
        return sorted(keys | set(PROTOCOL_KEYS))


@lru_cache(maxsize=None)
def _compose_cached(overrides: tuple[str, ...], environ: tuple[tuple[str, str], ...]) -> dict:
    """``environ`` is part of the key because the config reads ``${oc.env:...}`` (e.g. ``data_root``)."""
    from hydra import compose as _compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .cli import quote_numeric_options

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = _compose(config_name="config", overrides=quote_numeric_options(list(overrides)))
    return OmegaConf.to_container(cfg, resolve=True)


def compose(overrides: list[str]) -> dict:
    """The resolved config ``run.py`` would compose from ``overrides``, as a plain dict (no Hydra run dir)."""
    return copy.deepcopy(_compose_cached(tuple(overrides), tuple(sorted(os.environ.items()))))


def _canonical(value) -> str:
    """A comparable text of a config value (numbers as floats, so 1 and 1.0 agree)."""
    def norm(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return str(v)
    return json.dumps(norm(value), sort_keys=True)


def point_identity(cfg: dict, keys: list[str]) -> tuple[str, ...]:
    """The values of ``keys`` in a resolved config: what identifies a study point (a group by its ``name``)."""
    out = []
    for key in keys:
        node = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if "." not in key and isinstance(node, dict) and "name" in node:
            node = node["name"]           # a config group (method=gmp): the option chosen
        out.append(_canonical(node))
    return tuple(out)


def point_keys(spec: "StudySpec") -> list[str]:
    """The identity keys of ``spec``'s points; with ``shares``, the experiment's name is not one of them (the
    shared presets differ in nothing else)."""
    keys = spec.identity_keys()
    return [k for k in keys if k != "experiment_name"] if spec.shares else keys


def diverged(record: dict) -> bool:
    """A run that failed because its training diverged (``NonFiniteLoss``): an outcome of its LR, which the LR
    selection counts as the worst validation accuracy, not a missing run (a re-run with the same seed diverges
    again)."""
    return record.get("status") == "failed" and str(record.get("error") or "").startswith("NonFiniteLoss")


def counted(records: Iterable[dict], spec: "StudySpec", with_diverged: bool = False) -> list[dict]:
    """The ok records that count for ``spec``'s points, one per point (the last one; the study's own records win
    over those of the studies it ``shares``), in store order. ``with_diverged``: a point with no ok record is
    represented by its :func:`diverged` record, if it has one."""
    keys, rank = point_keys(spec), {e: i for i, e in enumerate(spec.experiments())}
    best: dict[tuple, tuple[int, int, int, dict]] = {}
    for i, r in enumerate(records):
        ok = r.get("status") == "ok"
        if not (ok or with_diverged and diverged(r)) or not isinstance(r.get("config"), dict) \
                or r.get("experiment") not in rank:
            continue
        point = point_identity(r["config"], keys)
        prev, order = best.get(point), (not ok, rank[r["experiment"]])
        if prev is None or order <= prev[:2]:
            best[point] = (*order, i, r)
    return [r for *_, r in sorted(best.values(), key=lambda v: v[2])]


def plateau_epochs(cfg: dict) -> int:
    """3/4 of the dense budget (the plateau check's shorter run)."""
    return max(1, round(0.75 * int(cfg["trainer"]["pretrain"]["epochs"])))


def choose_lr(val_by_lr: dict[float, float | None]) -> float | None:
    """The LR with the highest final validation accuracy (ties: the smaller LR); None until every LR has one, and
    when every LR diverged (``-inf``, see :func:`diverged`)."""
    if not val_by_lr or any(v is None for v in val_by_lr.values()):
        return None
    best = max(sorted(val_by_lr), key=lambda lr: (val_by_lr[lr], -lr))
    return None if val_by_lr[best] == float("-inf") else best


def selection_val(record: dict | None) -> float | None:
    """What a point's record gives the LR selection: its final validation accuracy, ``-inf`` when its training
    diverged, None when it has not run (or failed otherwise)."""
    if record is None:
        return None
    return float("-inf") if diverged(record) else (record.get("metrics") or {}).get("val_acc")


class StudyIndex:
    """The study's ok records by point identity (:func:`point_identity` over ``spec.identity_keys()``), and the
    :func:`diverged` records of points without one: both are done (a diverged run is not launched again).

    A record counts for a point when its experiment, the study's axes and the protocol keys agree, whatever
    else the config holds, so the committed store stays valid when the config layout changes (a key added,
    moved or renamed). Changing what a method computes therefore needs its study's records moved or removed
    (records carry ``git_commit``).
    """

    def __init__(self, spec: "StudySpec", results_dir: str | Path):
        self.results_dir = str(results_dir)
        self.spec = spec
        self.keys = point_keys(spec)
        self.refresh()

    def refresh(self) -> None:
        self.done = {point_identity(r["config"], self.keys): r
                     for r in counted(ResultsStore(self.results_dir).records(study_only=True), self.spec,
                                      with_diverged=True)}

    def record(self, overrides: list[str]) -> dict | None:
        """The last ok (else diverged) record of the point ``overrides`` (the spec's base included), or None."""
        return self.done.get(point_identity(compose(overrides), self.keys))

    def missing(self, overrides: list[str], seeds: list[int]) -> list[list[str]]:
        """The points ``overrides`` + ``seed=s`` that have no ok or diverged record."""
        return [[*overrides, f"seed={s}"] for s in seeds if self.record([*overrides, f"seed={s}"]) is None]


def selection(spec: StudySpec, index: StudyIndex, cells: list[list[str]] | None = None) -> list[dict]:
    """Per cell (``spec``'s, or ``cells`` of a study that takes ``spec``'s choices): the validation accuracy of each
    LR at the selection seed and the chosen LR (None if missing)."""
    rows = []
    for cell in spec.cells() if cells is None else cells:
        vals = {}
        for lr in spec.lr_grid:
            rec = index.record([*spec.base(), *cell, f"method.lr={lr}", f"seed={spec.select_seed}"])
            vals[float(lr)] = selection_val(rec)
        rows.append({"cell": cell, "val_by_lr": vals, "lr": choose_lr(vals)})
    return rows


@dataclass
class Launcher:
    """Runs each study point (a list of overrides) as one ``run.py`` process, ``jobs`` at a time with one thread
    each, or prints them (dry run)."""

    results_dir: str
    jobs: int = 2
    dry_run: bool = False
    python: str = sys.executable
    log_file: Path | None = None

    def command(self, point: list[str]) -> list[str]:
        return [self.python, str(ROOT / "run.py"), *point, f"results_dir={self.results_dir}", "trainer.progress=false"]

    def __call__(self, points: list[list[str]]) -> None:
        for point in points:
            print("$ python run.py " + " ".join(shlex.quote(c) for c in self.command(point)[2:]), flush=True)
        if self.dry_run:
            return
        env = {**os.environ, "OMP_NUM_THREADS": "1" if self.jobs > 1 else os.environ.get("OMP_NUM_THREADS", "2")}
        out = open(self.log_file, "a") if self.log_file else None
        finished = itertools.count(1)
        common = set.intersection(*map(set, points)) if len(points) > 1 else set()

        def one(point: list[str]) -> None:
            t0 = time.time()
            rc = subprocess.run(self.command(point), cwd=ROOT, env=env, check=False, stdout=out,
                                stderr=subprocess.STDOUT if out else None).returncode
            print(f"  [{next(finished)}/{len(points)}] {'ok' if rc == 0 else f'exit {rc}'} in {time.time() - t0:.0f} s:"
                  f" {' '.join(p for p in point if p not in common)}", flush=True)

        try:
            with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
                list(pool.map(one, points))
        finally:
            if out:
                out.close()


def _launch(launch: Launcher, points: list[list[str]], index: StudyIndex) -> None:
    if points:
        launch(points)
        index.refresh()


def run_study(spec: StudySpec, launch: Launcher, only_seeds: Iterable[int] | None = None) -> list[dict]:
    """Launch what the store lacks, stage by stage (dense, LR grid, chosen LRs); returns the LR selection.
    ``only_seeds``: launch only these seeds' points (a chunk that fits one machine's session: every arm of a seed
    then trains from one dense checkpoint; the LR grid runs only in the chunk holding ``select_seed``)."""
    index = StudyIndex(spec, launch.results_dir)
    base = spec.base()
    seeds = [s for s in spec.seeds if only_seeds is None or s in set(only_seeds)]
    select = [spec.select_seed] if only_seeds is None or spec.select_seed in set(only_seeds) else []
    if spec.dense:
        dense = [*base, "method=dense", "stages=[pretrain,evaluate]"]
        _launch(launch, index.missing(dense, seeds), index)
        if spec.plateau_check:
            short = [*dense, f"trainer.pretrain.epochs={plateau_epochs(compose(dense))}"]
            _launch(launch, index.missing(short, seeds), index)
    if spec.lr_grid:
        _launch(launch, [p for cell in spec.cells() for lr in spec.lr_grid
                         for p in index.missing([*base, *cell, f"method.lr={lr}"], select)], index)
    elif spec.grid and not spec.lr_from:   # no LR search: every cell at every seed
        _launch(launch, [p for cell in spec.cells() for p in index.missing([*base, *cell], seeds)], index)
    if spec.lr_from:
        source = StudySpec.load(spec.lr_from)
        chosen = selection(source, StudyIndex(source, launch.results_dir), spec.cells())
    else:
        chosen = selection(spec, index) if spec.lr_grid else []
    waiting = [row for row in chosen if row["lr"] is None]
    if waiting:
        print(f"  {len(waiting)} of {len(chosen)} cells wait for their LR-selection runs"
              f"{' (study ' + spec.lr_from + ')' if spec.lr_from else ''} (missing or failed)", flush=True)
    for row in chosen:
        if any(v == float("-inf") for v in row["val_by_lr"].values()):
            print(f"  diverged (counted as not chosen): {' '.join(row['cell'])} at LR "
                  f"{', '.join(str(lr) for lr, v in row['val_by_lr'].items() if v == float('-inf'))}", flush=True)
    finals = []
    for row in chosen:
        if row["lr"] is None:
            continue
        cell = [*base, *row["cell"], f"method.lr={row['lr']}"]
        finals += index.missing(cell, seeds)
        for variant in spec.variants:
            if all(f"{k}={v}" in row["cell"] for k, v in variant["of"].items()):
                finals += index.missing([*cell, *variant["overrides"]], seeds)
    for control in spec.controls:
        finals += index.missing([*base, *control], seeds)
    _launch(launch, finals, index)
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run what is missing of a study (see experiments/study.py).")
    ap.add_argument("names", nargs="+", help=f"study names (conf/study/*.yaml): "
                    f"{', '.join(sorted(p.stem for p in STUDY_DIR.glob('*.yaml')))}")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--jobs", type=int, default=2, help="parallel runs (one thread each)")
    ap.add_argument("--dry-run", action="store_true", help="print the sweeps, run nothing")
    ap.add_argument("--log", default=None, help="append the runs' output to this file")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="run only these seeds' points (a chunk for one session: a seed's arms share the dense model "
                         "trained on this machine; the LR grid runs with the selection seed's chunk)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in args.names:
        spec = StudySpec.load(name)
        print(f"# study {name} ({spec.experiment})", flush=True)
        chosen = run_study(spec, Launcher(args.results_dir, args.jobs, args.dry_run,
                                          log_file=Path(args.log) if args.log else None), args.seeds)
        for row in chosen:
            if spec.lr_grid and row["lr"] is not None:
                print(f"  {' '.join(row['cell'])}: lr {row['lr']} (val {row['val_by_lr']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
