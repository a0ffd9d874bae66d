"""Training loop, optimizers, LR schedules and the callback hook points."""
from .callbacks import Callback, ExtraOptimizer
from .optim import create_optimizer
from .schedule import LRSchedule, Phase, create_schedule
from .trainer import FitResult, NonFiniteLoss, Trainer

__all__ = ["Callback", "ExtraOptimizer", "create_optimizer", "LRSchedule", "Phase", "create_schedule",
           "FitResult", "NonFiniteLoss", "Trainer"]
