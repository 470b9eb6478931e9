"""domainfit: from a pretrained language model to a deployed, domain-specific model."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "train", "evaluate", "Predictor", "build_index"]


def __getattr__(name: str):
    # Lazy: `import domainfit` stays fast (the CLI's --help does not import torch).
    if name in ("load", "Predictor"):
        from . import inference

        return getattr(inference, name)
    if name in ("train", "evaluate"):
        # The composing module is pipeline.py, not train.py: a submodule named `train`
        # would replace the `domainfit.train` function on first import.
        from . import pipeline

        return getattr(pipeline, name)
    if name == "build_index":
        from . import retrieval

        return retrieval.build_index
    raise AttributeError(name)
