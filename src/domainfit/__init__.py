"""domainfit: from a pretrained language model to a deployed, domain-specific model.

    >>> import domainfit
    >>> result = domainfit.train(data="train.csv", eval_data="test.csv", output="my-model")   # doctest: +SKIP
    >>> result.predictor.predict(["where is my new card?"])                                 # doctest: +SKIP
    >>> domainfit.load("my-model").predict_proba(["where is my new card?"])                 # doctest: +SKIP
"""

from __future__ import annotations

from .core.version import __version__

__all__ = ["__version__", "load", "train", "evaluate", "Predictor", "TrainResult", "build_index", "export_model"]

_PUBLIC = {"load": "inference", "Predictor": "inference", "build_index": "inference", "train": "run",
           "evaluate": "run", "TrainResult": "run", "export_model": "export"}


def __getattr__(name: str):
    # Lazy: `import domainfit` stays fast (the command line's --help does not import torch).
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(name)
