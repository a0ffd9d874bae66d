"""Checkpoint/resume of a whole run, and preemption (SIGTERM/SIGUSR1/SIGUSR2) handling.

Design: *replay with resumable fits*. A run is identified by a deterministic key (a hash of the
resolved config without ``results_dir``/``logger``/paths, or an explicit ``resume_key``). Its resume
folder ``<results_dir>/checkpoints/resume/<key>/`` holds

- ``state.json``: the run id, start time and the stages already completed (with their seconds);
- ``fit-<stage>-<phase>-<n>.pt``: the ``Trainer`` state of the n-th ``ctx.fit`` of a stage
  (model, all optimizers, callbacks' method state, epoch/step, result history, loader generators,
  global RNG states, and a mid-epoch position when the run was preempted), written atomically
  every epoch.

A resumed run executes the same stage code again. Every stage after ``pretrain`` starts from a
re-seeded RNG (``stage_seed``), so the replay of calibration and pruning is deterministic; each
``ctx.fit`` finds its checkpoint and continues from it (a finished fit only restores its final
state). The dense model comes from the dense cache. Hence "kill -9, re-run" ends with exactly the
metrics of an uninterrupted run on CPU. The folder is deleted when the run finishes; a failed run
keeps it (``resume=false`` starts over).

Methods keep per-epoch state that must survive a restart in their callbacks' ``state_dict``.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import CheckpointError, atomic_save, safe_load

log = logging.getLogger(__name__)

#: Exit status of a run stopped by a preemption signal after checkpointing (EX_TEMPFAIL, "try again").
REQUEUE_EXIT_CODE = 75

#: Config keys that do not change what a run computes, so they are left out of the run key.
KEY_EXCLUDE = ("results_dir", "logger", "data_root", "resume", "resume_key", "device", "store", "skip_done")
TRAINER_KEY_EXCLUDE = ("progress",)


class Preempted(BaseException):
    """Raised at a step boundary after a preemption signal, once the checkpoint is written.

    A ``BaseException`` so the pipeline does not record the run as failed: it will be resumed.
    """


# -- run key -----------------------------------------------------------------------------------
def run_key(cfg: DictConfig) -> str:
    """``cfg.resume_key`` when set, else a 16-hex hash of the resolved config minus paths/logging."""
    explicit = cfg.get("resume_key")
    if explicit:
        return str(explicit)
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain = {k: v for k, v in plain.items() if k not in KEY_EXCLUDE and k != "hydra"}
    if isinstance(plain.get("trainer"), dict):
        plain["trainer"] = {k: v for k, v in plain["trainer"].items() if k not in TRAINER_KEY_EXCLUDE}
    blob = json.dumps(plain, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def stage_seed(seed: int, stage: str) -> int:
    """Seed of a stage: a stable function of (run seed, stage name), independent of earlier stages."""
    return int(hashlib.sha1(f"{seed}:{stage}".encode()).hexdigest()[:8], 16)


# -- RNG state -----------------------------------------------------------------------------------
def rng_state() -> dict:
    """Global RNG states (torch CPU/CUDA, numpy, python) as tensors, loadable with ``weights_only``."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
             "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                        "gauss": py_gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# -- preemption ----------------------------------------------------------------------------------
class _Preemption:
    """Signal flag: the handler only records the signal; the trainer acts at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def handler(self, signum: int, frame=None) -> None:  # noqa: ARG002 - signal API
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt   # a second Ctrl-C: stop now (the last epoch checkpoint stays)
        if self.signum is None:
            log.warning("caught %s: checkpointing at the next step boundary, then exiting%s",
                        signal.Signals(signum).name, " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else "")
        self.signum = signum

    @property
    def interrupted(self) -> bool:
        """The signal was Ctrl-C (SIGINT): the user stops the run, nobody requeues it."""
        return self.signum == signal.SIGINT

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def chain(self) -> None:
        """After our checkpoint: hand the signal to the handler that was there before (submitit
        requeues the job on its signal), else leave it to the caller to exit with ``REQUEUE_EXIT_CODE``."""
        signum, self.signum = self.signum, None
        prev = self.previous.get(signum) if signum is not None else None
        if callable(prev):
            prev(signum, None)


PREEMPTION = _Preemption()
PREEMPT_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT")
#: exit status after Ctrl-C (128 + SIGINT, the shell's convention)
INTERRUPT_EXIT_CODE = 130


def install_preemption_handlers() -> None:
    """Route SIGTERM/SIGUSR1/SIGUSR2 to the checkpoint-then-exit path (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in PREEMPT_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        current = signal.getsignal(sig)
        if current is not PREEMPTION.handler:
            PREEMPTION.previous[sig] = current
            signal.signal(sig, PREEMPTION.handler)


def preemption_requested() -> bool:
    return PREEMPTION.requested


# -- the resume folder ---------------------------------------------------------------------------
class ResumeState:
    """One run's resume folder. ``writer=False`` (DDP ranks > 0) reads but never writes."""

    def __init__(self, results_dir: str | os.PathLike, key: str, enabled: bool = True, writer: bool = True):
        self.key = key
        self.enabled = enabled
        self.writer = writer
        self.dir = Path(results_dir) / "checkpoints" / "resume" / key
        self.state: dict = {}
        self.resumed = False
        self.stage = ""
        self._counters: dict[tuple[str, str], int] = {}
        self._lock_fd: int | None = None

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def begin(self, run_id: str, started: str) -> tuple[str, str]:
        """Load (or create) the run's state; returns the (possibly earlier) ``run_id`` and start time."""
        if not self.enabled:
            return run_id, started
        if not self._lock():
            log.warning("another process is running this config (%s is locked); this run neither resumes "
                        "nor checkpoints (set resume_key=<name> to tell the runs apart)", self.dir)
            self.enabled = False
            return run_id, started
        if self.state_file.exists():
            try:
                self.state = json.loads(self.state_file.read_text())
                run_id, started = self.state["run_id"], self.state["started"]
            except (ValueError, KeyError, TypeError, OSError) as exc:
                # without its state the folder's fit checkpoints cannot be trusted: set all of it aside, start over
                for path in [self.state_file, *self.dir.glob("fit-*.pt")]:
                    self._quarantine(path)
                log.warning("resume state %s is corrupt (%s); it and the run's checkpoints were moved aside "
                            "(*.corrupt): this run starts over", self.state_file, type(exc).__name__)
                self.state = {}
        if self.state:
            self.resumed = True
            self.state["attempts"] = int(self.state.get("attempts", 1)) + 1
            log.info("resuming run %s from %s (attempt %d, stages done: %s)", run_id, self.dir,
                     self.state["attempts"], ", ".join(self.state.get("stages_done", {})) or "none")
        else:
            self.state = {"run_id": run_id, "started": started, "key": self.key, "attempts": 1, "stages_done": {}}
        self._write_state()
        return run_id, started

    def _lock(self) -> bool:
        """Hold an exclusive lock on the folder for the life of this process (released on any exit)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write_state(self) -> None:
        if not (self.enabled and self.writer):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(self.state, indent=1))
            fh.flush()
            os.fsync(fh.fileno())   # the rename must never publish an empty file after a crash
        os.replace(tmp, self.state_file)

    def start_stage(self, name: str) -> None:
        self.stage = name
        self._counters = {}

    def stage_done(self, name: str, seconds: float) -> None:
        if self.enabled:
            self.state.setdefault("stages_done", {})[name] = seconds
            self._write_state()

    # -- per-fit trainer checkpoints -----------------------------------------------------------
    def fit_path(self, phase: str) -> Path:
        n = self._counters.get((self.stage, phase), 0)
        self._counters[(self.stage, phase)] = n + 1
        return self.dir / f"fit-{self.stage or 'none'}-{phase}-{n}.pt"

    def attach(self, trainer, phase: str) -> None:
        """Load the fit's checkpoint into ``trainer`` if there is one, and save one every epoch."""
        if not self.enabled:
            return
        path = self.fit_path(phase)
        if path.exists():
            try:
                state = safe_load(path, map_location=trainer.device)
            except CheckpointError:
                self._quarantine(path)
                raise CheckpointError(f"resume checkpoint {path} is corrupt; moved to {path.name}.corrupt, "
                                      f"re-run to restart this training phase (or resume=false to start over)") from None
            trainer.load_state_dict(state)
            self.resumed = True
            log.info("resumed %s/%s at epoch %d step %d from %s", self.stage, phase, trainer.epoch,
                     trainer.global_step, path.name)
        trainer.checkpoint_fn = self._saver(path)

    def _saver(self, path: Path) -> Callable:
        def save(trainer) -> None:
            if self.writer:
                atomic_save(trainer.state_dict(), path)
        return save

    def _quarantine(self, path: Path) -> None:
        if self.writer and path.exists():
            os.replace(path, path.with_name(path.name + ".corrupt"))

    def finish(self) -> None:
        """The run is recorded: its resume folder is no longer needed."""
        if self.enabled and self.writer and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        self.release()


def exit_for_requeue() -> None:
    """Exit after a preemption checkpoint: chain to a previous handler (submitit), else exit 75; after Ctrl-C,
    exit 130 with one line."""
    if PREEMPTION.interrupted:
        print("interrupted; re-run the same command to resume", file=sys.stderr, flush=True)
        sys.exit(INTERRUPT_EXIT_CODE)
    PREEMPTION.chain()
    sys.exit(REQUEUE_EXIT_CODE)
