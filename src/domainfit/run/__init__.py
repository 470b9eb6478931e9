"""Orchestration: training (supervised, zero-shot, ``auto``), evaluation, and the demo.

:func:`train` and :func:`evaluate` are what the command line, the Python API and the apps
call; they compose the lower layers (data, tasks, methods, the training loop, the artifact).
"""

from .evaluate import evaluate
from .supervised import TrainResult
from .train import train

__all__ = ["train", "evaluate", "TrainResult"]
