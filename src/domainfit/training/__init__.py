"""The training loop, checkpoints, run logs and the choice of precision."""

from .loop import TrainState, count_steps, fit
from .precision import resolve_precision

__all__ = ["TrainState", "fit", "count_steps", "resolve_precision"]
