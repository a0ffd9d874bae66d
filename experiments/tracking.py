"""W&B tracking that never kills a run.

Offline by default (run dirs under ``<results_dir>/wandb``; ``wandb sync`` them later).
``mode=online`` falls back to offline with a warning when init fails; ``mode=disabled``
logs nothing. Every W&B call is guarded: a tracking error is a warning, never a crash.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")


class Tracker:
    """Thin wrapper over one ``wandb`` run (or nothing when disabled / unavailable)."""

    def __init__(self, mode: str = "offline", project: str = "flowprune", entity: str | None = None,
                 group: str | None = None, job_type: str | None = None, name: str | None = None,
                 tags: list[str] | None = None, config: dict | None = None,
                 results_dir: str | os.PathLike = "results", enabled: bool = True):
        if mode not in MODES:
            raise ConfigError(f"logger.mode={mode!r} is not one of {MODES}")
        self.mode = mode if enabled else "disabled"
        self.run = None
        if self.mode == "disabled":
            return
        wandb_dir = Path(results_dir)
        wandb_dir.mkdir(parents=True, exist_ok=True)
        kwargs = dict(project=project, entity=entity, group=group, job_type=job_type, name=name,
                      tags=list(tags or []), config=config, dir=str(wandb_dir), reinit="finish_previous")
        try:
            import wandb
        except ImportError:  # pragma: no cover - wandb is a dependency
            log.warning("wandb is not installed; tracking disabled")
            self.mode = "disabled"
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        for attempt in (self.mode, "offline"):
            try:
                self.run = wandb.init(mode=attempt, **kwargs)
                self.mode = attempt
                return
            except Exception as exc:  # noqa: BLE001 - W&B errors never kill a run
                log.warning("wandb.init(mode=%s) failed (%s)%s", attempt, str(exc).splitlines()[0],
                            "; falling back to offline" if attempt == "online" else "")
                if attempt == "offline":
                    break
        self.mode = "disabled"

    @property
    def active(self) -> bool:
        return self.run is not None

    def _safe(self, fn, *args, **kwargs) -> Any:
        if self.run is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            log.warning("wandb call failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return None

    def log(self, metrics: dict, step: int | None = None) -> None:
        self._safe(lambda: self.run.log(metrics, step=step))

    def summary(self, metrics: dict) -> None:
        def _update():
            for key, value in metrics.items():
                self.run.summary[key] = value
        self._safe(_update)

    def table(self, key: str, columns: list[str], rows: list[list]) -> None:
        def _log():
            import wandb
            self.run.log({key: wandb.Table(columns=columns, data=rows)})
        self._safe(_log)

    def image(self, key: str, path: str | os.PathLike) -> None:
        def _log():
            import wandb
            self.run.log({key: wandb.Image(str(path))})
        self._safe(_log)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self._safe(lambda: self.run.finish(exit_code=exit_code))
            self.run = None

    @property
    def run_dir(self) -> str | None:
        return getattr(self.run, "dir", None) if self.run is not None else None
