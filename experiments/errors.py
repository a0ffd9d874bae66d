"""The project's own exception types.

A :class:`UserError` is one a user can cause (a config key, a missing file, a full disk, a diverged run): the
pipeline records the run as failed and prints one line naming the key or path and the fix, without a traceback.
Every other exception is a bug: its traceback is printed, then the same one-line summary. Each type also keeps
the builtin base that fits it, so ``except ValueError`` / ``except OSError`` go on working.
"""
from __future__ import annotations


class UserError(Exception):
    """Base of the errors a user can cause (reported in one line)."""


class ConfigError(UserError, ValueError):
    """A config value is invalid or inconsistent; the message names the key and a valid choice."""


class DatasetUnavailable(UserError, FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message names the fix."""


class DatasetCorrupt(DatasetUnavailable):
    """A dataset file exists but its bytes are not what its format says (truncated, wrong magic)."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing, truncated or not ours; the message names the file."""


class CheckpointWriteError(UserError, OSError):
    """A checkpoint or model file could not be written (the old file, if any, is untouched)."""


class StoreWriteError(UserError, OSError):
    """A record could not be written (the file is left as it was)."""


class NonFiniteLoss(UserError, FloatingPointError):
    """Training diverged (NaN/inf); the message names the epoch, step and the knob to turn."""


class TrainingOutOfMemory(UserError, RuntimeError):
    """The device ran out of memory in a training step; the message names ``trainer.batch_size``."""
