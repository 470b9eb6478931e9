"""The server's Prometheus metrics (one registry per app, served at ``/metrics``)."""

from __future__ import annotations

__all__ = ["create_metrics"]


def create_metrics() -> dict:
    """Counters and histograms by name: ``requests``, ``errors``, ``latency``, ``batch``,
    ``texts``, and the ``registry`` that holds them."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    return {
        "registry": registry,
        "requests": Counter("domainfit_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                            registry=registry),
        "errors": Counter("domainfit_errors", "HTTP requests answered with an error status", ["endpoint", "status"],
                          registry=registry),
        "latency": Histogram("domainfit_request_latency_seconds", "Request latency", ["endpoint"], registry=registry,
                             buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)),
        "batch": Histogram("domainfit_batch_size", "Items per model call (micro-batching)", ["model"],
                           registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)),
        "texts": Counter("domainfit_predicted_items", "Texts, sentences or queries predicted", ["model"],
                         registry=registry),
    }
