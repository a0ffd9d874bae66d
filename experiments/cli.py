"""What ``run.py`` calls inside ``@hydra.main``: run the pipeline, turn failures into one line."""
from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from omegaconf import DictConfig

from .pipeline import RunFailed, run
from .resume import (INTERRUPT_EXIT_CODE, PREEMPTION, Preempted, exit_for_requeue, install_preemption_handlers,
                     preemption_requested)

log = logging.getLogger("flowprune")


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
    from .results import ResultsStore

    values = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("results_dir=")]
    try:
        ResultsStore(values[-1] if values else "results").check_writable()
    except PermissionError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.argv[1:] = torchrun_overrides(quote_numeric_options(argv))


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
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
    install_preemption_handlers()
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
        print(f"error: {exc.args[0]}", file=sys.stderr, flush=True)
        if _is_multirun():
            return None
        sys.exit(1)
    if preemption_requested():  # the signal came after the last training step: the run is recorded, stop here
        print("preempted after the run finished; exiting for requeue", file=sys.stderr, flush=True)
        exit_for_requeue()
    return record["metrics"].get("test_acc")
