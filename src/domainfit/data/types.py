"""Plain data objects handed from the data stage to the rest of domainfit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Example", "Dataset", "ColumnSpec", "SkippedRow"]


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns of the user's file hold what."""

    text: str = "text"
    label: str = "label"
    text_pair: str | None = None


@dataclass
class Example:
    """One input example, already parsed for its task.

    Attributes:
        text: the input text.
        label: the parsed target: ``str`` for classification, ``list[str]`` for multilabel
            and for token classification (one BIO tag per word), ``float`` for regression, ``None`` when the data has no labels (prediction).
        text_pair: optional second text (sentence pairs).
        line: where the example came from (file line, or row index for in-memory data),
            used only in messages.
        tokens: token classification: the words, in order.
        offsets: token classification: each word's ``(start, end)`` in ``text``.
        negatives: retrieval: documents that do not answer the query (hard negatives).
        soft: single-label classification: a probability per label (in the run's label
            order) that training aims for instead of ``label`` alone: a teacher's
            (distillation) or an even spread (a text of no class: outlier exposure).
    """

    text: str
    label: Any = None
    text_pair: str | None = None
    line: int | None = None
    tokens: list[str] | None = None
    offsets: list[tuple[int, int]] | None = None
    negatives: list[str] | None = None
    soft: list[float] | None = None


@dataclass
class SkippedRow:
    """A row left out under ``--on-bad-rows skip``, with why."""

    line: int | None
    column: str | None
    reason: str
    values: dict[str, Any]


@dataclass
class Dataset:
    """A loaded, parsed data set.

    Attributes:
        examples: the examples, in file order.
        source: file path, or ``"<dataframe>"`` / ``"<records>"``.
        fingerprint: sha256 hex of the file bytes (of a canonical JSON dump for in-memory data).
        columns: the column mapping used.
        skipped: rows left out under the ``skip`` policy (empty otherwise).
        warnings: non-fatal notes for the user (e.g. texts that will be truncated).
        unk_share: the share of the texts' tokens that the tokenizer could not read
            (``[UNK]``), when loaded with a tokenizer; None otherwise.
    """

    examples: list[Example]
    source: str
    fingerprint: str
    columns: ColumnSpec = field(default_factory=ColumnSpec)
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unk_share: float | None = None

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[Any]:
        return [e.label for e in self.examples]
