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
