"""What a deployment keeps: the model registry (a folder of named, versioned artifacts with
stages), the feedback store, the prediction log, the job table and the review queue (SQL
tables in one database, SQLite by default)."""

from .feedback import FeedbackStore
from .jobs import FINISHED, JOB_STATES, JobStore
from .predictions import LoggedPrediction, PredictionLog, parse_since
from .registry import STAGES, Registry, check_name
from .review import REVIEW_SOURCES, ReviewStore

__all__ = ["Registry", "FeedbackStore", "PredictionLog", "LoggedPrediction", "parse_since", "STAGES", "check_name",
           "JobStore", "JOB_STATES", "FINISHED", "ReviewStore", "REVIEW_SOURCES"]
