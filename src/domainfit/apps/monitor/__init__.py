"""Financial sentiment and public-opinion monitoring: entity linking, de-duplicated document
streams, windowed aggregates, alerts and a dashboard (docs/monitoring.md).

    >>> from domainfit.apps.monitor import load_recipe, train_bundle, Monitor          # doctest: +SKIP
    >>> train_bundle(load_recipe("recipes/finance_monitoring.yaml"), "finance-monitor")  # doctest: +SKIP
    >>> Monitor("finance-monitor", "sqlite:///monitor.db").ingest(documents)            # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["load_recipe", "Recipe", "train_bundle", "read_bundle", "Monitor", "MonitorStore", "evaluate_bundle",
           "EntityLinker", "read_entities", "Deduplicator", "load_rules", "AlertEngine", "aggregate",
           "create_monitor_app", "run_ingest", "read_documents"]

_WHERE = {"load_recipe": "recipe", "Recipe": "recipe", "train_bundle": "bundle", "read_bundle": "bundle",
          "Monitor": "monitor", "MonitorStore": "store", "evaluate_bundle": "evaluate", "EntityLinker": "entities",
          "read_entities": "entities", "Deduplicator": "dedup", "load_rules": "alerts", "AlertEngine": "alerts",
          "aggregate": "aggregates", "create_monitor_app": "server", "run_ingest": "ingest",
          "read_documents": "documents"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)
