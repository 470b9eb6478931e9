"""The parity check of an export: the exported graph and the original model score the same
held-out texts, and the task says how often their decisions agree."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifact import PARITY_SAMPLE, read_parity_sample
from ..core.errors import ConfigError

__all__ = ["parity_inputs", "outputs", "compare"]


def parity_inputs(predictor, data: Any = None, limit: int = 256) -> list:
    """Held-out examples: from ``data`` (a file or rows, columns as in training), else the
    sample of validation texts stored in the artifact at training time.

    Raises:
        ConfigError: no ``data`` and the artifact stores no sample.
    """
    from ..data import ColumnSpec, Example, load_dataset
    from ..data.tokens import join_tokens

    if data is not None:
        trained = predictor.manifest.get("config", {}).get("data", {})
        columns = ColumnSpec(trained.get("text_column", "text"), trained.get("label_column", "label"),
                             trained.get("text_pair_column"))
        ds = load_dataset(data, task=predictor.task.name, columns=columns, require_labels=False, on_bad_rows="skip")
        return ds.examples[:limit]
    if not (predictor.path / PARITY_SAMPLE).is_file():
        raise ConfigError(f"{predictor.path} stores no validation sample for the parity check; pass --data FILE "
                          "with held-out texts.")
    return [Example(r["text"], text_pair=r.get("text_pair"), tokens=r.get("tokens"),
                    offsets=join_tokens(r["tokens"])[1] if r.get("tokens") else None)
            for r in read_parity_sample(predictor.path, limit)]


def outputs(predictor, examples: list) -> np.ndarray:
    """What the task compares (``Task.parity_outputs``): probabilities, values, per-word
    probabilities or embeddings."""
    return predictor.task.parity_outputs(predictor.model, predictor.tokenizer, examples, predictor.labels,
                                         predictor.max_length)


def compare(task, reference: np.ndarray, produced: np.ndarray) -> tuple[float, float]:
    """``(largest absolute difference, share of agreeing decisions)``."""
    difference = float(np.max(np.abs(produced - reference))) if reference.size else 0.0
    return difference, task.agreement(reference, produced)
