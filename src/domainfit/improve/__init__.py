"""Keeping a served model good: drift between the texts it was built on and the texts it
now sees (and, in the modules beside this one, the rest of the improvement loop)."""

from .drift import DriftResult, TextSet, compare, logged_set, run_drift, scored_set, write_report

__all__ = ["DriftResult", "TextSet", "compare", "logged_set", "run_drift", "scored_set", "write_report"]
