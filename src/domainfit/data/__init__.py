"""Data: loading, validation, splits, few-shot sampling and the built-in sample data.

Example:
    >>> from domainfit.data import load_dataset, train_val_split, sample_data_path
    >>> data = load_dataset(sample_data_path())  # doctest: +SKIP
    >>> train, val = train_val_split(data.examples, val_fraction=0.1, seed=42)  # doctest: +SKIP
"""

from domainfit.data._labels import class_key, to_text
from domainfit.data.loading import file_sha256, load_dataset, read_rows, write_skipped
from domainfit.data.sample import sample_data_path
from domainfit.data.splits import sample_few_shot, train_val_split
from domainfit.data.types import ColumnSpec, Dataset, Example, SkippedRow
from domainfit.data.validation import UnseenLabel, check_eval_labels, check_split_possible, validate_examples

__all__ = [
    "Example", "Dataset", "ColumnSpec", "SkippedRow",
    "read_rows", "load_dataset", "write_skipped",
    "validate_examples", "check_split_possible", "check_eval_labels", "UnseenLabel",
    "train_val_split", "sample_few_shot",
    "sample_data_path", "class_key", "to_text", "file_sha256",
]
