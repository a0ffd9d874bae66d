"""What ``run.py`` calls inside ``@hydra.main``: run the pipeline, turn failures into one line."""
from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from .pipeline import RunFailed, run

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


def main_entry(cfg: DictConfig) -> float | None:
    """Returns the final test accuracy (for Hydra sweepers). A failed run is recorded; in a multirun
    the sweep goes on, a single run exits with status 1 after printing the error line."""
    try:
        record = run(cfg)
    except RunFailed as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr, flush=True)
        if _is_multirun():
            return None
        sys.exit(1)
    return record["metrics"].get("test_acc")
