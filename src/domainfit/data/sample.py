"""The built-in customer-service sample data (bank and online-shop intents).

Fifteen intents, written for domainfit (not taken from any public data set), about
one in eight examples in simplified Chinese. ``domainfit demo`` trains on it.
"""

from __future__ import annotations

from pathlib import Path

from domainfit.core.errors import ConfigError

__all__ = ["sample_data_path", "SAMPLE_FILES"]

SAMPLE_FILES = {"train": "customer_service.csv", "test": "customer_service_test.csv"}


def sample_data_path(split: str = "train") -> Path:
    """Path of the built-in customer-service data (CSV with columns ``text,label``).

    Args:
        split: ``"train"`` (the training set) or ``"test"`` (a small held-out set with
            new wording).

    Returns:
        The path of the CSV file inside the installed package.

    Raises:
        ConfigError: an unknown split.

    Example:
        >>> data = load_dataset(sample_data_path("train"))  # doctest: +SKIP
    """
    try:
        name = SAMPLE_FILES[split]
    except KeyError:
        raise ConfigError(f"unknown sample split '{split}'; use 'train' or 'test'") from None
    # The package is installed as plain files (see package-data in pyproject.toml), so a
    # path next to this module is a real file that any reader can open.
    return Path(__file__).resolve().parent / "sample" / name
