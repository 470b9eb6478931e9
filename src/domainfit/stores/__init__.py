"""What a deployment keeps: the model registry (a folder of named, versioned artifacts with
stages) and the feedback store (a SQL table, SQLite by default)."""

from .feedback import FeedbackStore
from .registry import STAGES, Registry, check_name

__all__ = ["Registry", "FeedbackStore", "STAGES", "check_name"]
