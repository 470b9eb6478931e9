"""Prediction from an artifact folder: the :class:`Predictor`, streaming prediction over
files, and the search index of retrieval models."""

from .predictor import Predictor, load

__all__ = ["Predictor", "load", "predict_file", "build_index", "Index"]


def __getattr__(name: str):
    if name == "predict_file":
        from .stream import predict_file

        return predict_file
    if name == "build_index":
        from .indexing import build_index

        return build_index
    if name == "Index":
        from .search import Index

        return Index
    raise AttributeError(name)
