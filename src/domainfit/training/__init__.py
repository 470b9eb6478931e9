"""The training loop, checkpoints and run logs."""

from .loop import TrainState, fit, predict_logits

__all__ = ["TrainState", "fit", "predict_logits"]
