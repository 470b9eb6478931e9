"""What a deployment keeps: the model registry (a folder of named, versioned artifacts with
stages), the feedback store and the prediction log (SQL tables in one database, SQLite by
default)."""

from .feedback import FeedbackStore
from .predictions import LoggedPrediction, PredictionLog, parse_since
from .registry import STAGES, Registry, check_name

__all__ = ["Registry", "FeedbackStore", "PredictionLog", "LoggedPrediction", "parse_since", "STAGES", "check_name"]
