"""What ``run.py`` calls inside ``@hydra.main``: run the pipeline, turn failures into one line."""
from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from omegaconf import DictConfig


log = logging.getLogger("flowprune")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - not inside a Hydra app
        return False


def preflight(argv: list[str]) -> None:
    """Checks that must happen before Hydra creates its run dir under ``results_dir``.

    Hydra makes ``<results_dir>/hydra/...`` before the task starts, so an unwritable results dir
    would surface as a Hydra traceback; check it here and exit with one line instead.
    """
    try:
        check_group_options(argv)
        check_output_dirs(argv)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.argv[1:] = torchrun_overrides(quote_numeric_options(argv))


class PreflightError(ValueError):
    """A command-line mistake found before Hydra starts (one line)."""


def group_choices(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of config group ``group``: its YAML files, nested ones as ``sub/name`` (experiment presets)."""
    root = conf_dir / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def check_group_options(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """``model=nope`` -> one line with the closest options, instead of Hydra's listing of the search path.
    Skipped when ``hydra.searchpath`` is given (the user's config dirs may hold more options)."""
    import difflib

    if any(a.lstrip("+").startswith("hydra.searchpath") for a in argv):
        return
    for arg in argv:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~")
        if not sep or "." in group or group.startswith("hydra") or not (conf_dir / group).is_dir():
            continue
        choices = group_choices(group, conf_dir)
        for option in (v.strip().strip("'\"") for v in value.split(",")):
            if option in ("null", "") or option in choices:
                continue
            close = difflib.get_close_matches(option, choices, n=3, cutoff=0.4)
            hint = f"closest: {', '.join(close)}; " if close else ""
            raise PreflightError(f"{group}={option} is not an option of {group}; {hint}choices: {', '.join(choices)}")


def _creatable_dir(path: Path) -> bool:
    """``path``'s parent exists as a directory or can be made (what Hydra does next), and ``path`` is not a file."""
    path = path.expanduser().absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".flowprune-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError:
        return False
    return not path.is_file()


def check_output_dirs(argv: list[str]) -> None:
    """``results_dir`` and Hydra's run/sweep dir, wherever they were set (command line, preset, conf/local),
    must be writable before Hydra creates them: compose the config the way run.py will (sweeps at their first
    value) and check both."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .results import ResultsStore

    overrides = [a for a in quote_numeric_options(argv) if not a.startswith("-")]
    first = [a if "=" not in a or "," not in a.split("=", 1)[1] or "[" in a else a.split(",")[0] for a in overrides]
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=first, return_hydra_config=True)
        results_dir = str(cfg.results_dir)
        multirun = "-m" in argv or "--multirun" in argv
        hydra_dir = str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)
    except Exception:  # noqa: BLE001 - anything Hydra will itself report (bad override syntax, ...)
        return
    finally:
        GlobalHydra.instance().clear()
    try:
        ResultsStore(results_dir).check_writable()
    except PermissionError as exc:
        raise PreflightError(str(exc)) from None
    if not _creatable_dir(Path(hydra_dir)):
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        raise PreflightError(f"{key}={hydra_dir} cannot be created (not writable); pass {key}=<a writable path>")


#: roots under which a new (``+``) key is read by nobody: their code reads known names only
UNREAD_ROOTS = ("trainer", "measure", "logger", "dataset")


def drop_unread_keys(cfg: DictConfig) -> list[str]:
    """``+foo=1`` / ``+trainer.foo=1``: a key no component reads. Warn, naming it, and remove it so that it
    does not change the run key. (``+method.x`` / ``+model.kwargs.x`` reach a constructor, which rejects or uses
    them.)"""
    from omegaconf import OmegaConf, open_dict

    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - not inside a Hydra app
        return []
    known_roots = set(OmegaConf.to_container(cfg, resolve=False))
    dropped = []
    for arg in task:
        if not arg.startswith("+") or arg.startswith("++") or "=" not in arg:
            continue
        key = arg[1:].split("=", 1)[0]
        root = key.split(".")[0]
        if "/" in key or (root not in UNREAD_ROOTS and "." in key and root in known_roots):
            continue
        with open_dict(cfg):
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if node is not None and leaf in node:
                del node[leaf]
                dropped.append(key)
    if dropped:
        log.warning("ignoring %s: no component reads %s (not part of the run key)", ", ".join(dropped),
                    "it" if len(dropped) == 1 else "them")
    return dropped


_NUMBERS = re.compile(r"^\d+(\.\d+)?(,\d+(\.\d+)?)*$")


def quote_numeric_options(argv: list[str], conf_dir: Path = CONF_DIR) -> list[str]:
    """``sparsity=90,95,98`` -> ``sparsity="90","95","98"``: Hydra reads a bare number as an int and
    refuses it as a config-group option ("Config group override must be a string"); quoting the
    numeric option names of a config group makes the DESIGN contract's ``-m sparsity=90,95,98`` work."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~")
        if sep and "." not in group and (conf_dir / group).is_dir() and _NUMBERS.match(value):
            arg = f'{key}={",".join(chr(34) + v + chr(34) for v in value.split(","))}'
        out.append(arg)
    return out


def torchrun_overrides(argv: list[str]) -> list[str]:
    """Under ``torchrun`` every rank composes its own config and ``${now:...}`` differs between ranks:
    pin ``hydra.run.dir`` to one folder named by the torchrun job, and keep ranks > 0 quiet."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return list(argv)
    out = list(argv)
    if not any(a.startswith("hydra.run.dir=") for a in out):
        job = os.environ.get("TORCHELASTIC_RUN_ID", "none")
        job = job if job != "none" else f"port{os.environ.get('MASTER_PORT', '0')}"
        out.append(f"hydra.run.dir=${{results_dir}}/hydra/torchrun/{job}")
    if int(os.environ.get("RANK", "0")) > 0:
        out += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return out


def main_entry(cfg: DictConfig) -> float | None:
    """Returns the final test accuracy (for Hydra sweepers). A failed run is recorded; in a multirun
    the sweep goes on, a single run exits with status 1 after printing the error line. A preemption
    signal (SIGTERM/SIGUSR1, or submitit's SIGUSR2) checkpoints at the next step and exits with
    ``REQUEUE_EXIT_CODE`` (or lets submitit requeue the job); re-running the command resumes."""
    from .pipeline import RunFailed, run   # torch is imported here, not by run.py's preflight
    from .resume import (INTERRUPT_EXIT_CODE, PREEMPTION, Preempted, exit_for_requeue, install_preemption_handlers,
                         preemption_requested)

    install_preemption_handlers()
    drop_unread_keys(cfg)
    try:
        record = run(cfg)
    except Preempted as exc:
        if not PREEMPTION.interrupted:
            print(f"preempted: {exc}; re-run the same command to resume", file=sys.stderr, flush=True)
        exit_for_requeue()
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume from the last epoch checkpoint", file=sys.stderr,
              flush=True)
        sys.exit(INTERRUPT_EXIT_CODE)
    except RunFailed as exc:
        if exc.__cause__ is not None:   # a genuine bug: its traceback, then the one-line summary last
            import traceback

            traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(f"error: {exc.args[0]}", file=sys.stderr, flush=True)
        if _is_multirun():
            return None
        sys.exit(1)
    if preemption_requested():  # the signal came after the last training step: the run is recorded, stop here
        print("preempted after the run finished; exiting for requeue", file=sys.stderr, flush=True)
        exit_for_requeue()
    return record["metrics"].get("test_acc")
