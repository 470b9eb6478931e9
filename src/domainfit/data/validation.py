"""Checks on parsed examples, reported in the user's terms (file, line, column, reason).

Row-level problems (an empty text, a missing label, conflicting copies of a text) can be
skipped under ``on_bad_rows="skip"``; whole-file problems (``line is None``, e.g. a label
column with one class only) cannot. Texts that will be truncated are a warning, not a
problem. Labels in evaluation data that training never saw are warnings too: those rows
are scored as errors later.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from domainfit.data._labels import class_key, label_format
from domainfit.data.types import ColumnSpec, Dataset, Example
from domainfit.core.errors import Problem

__all__ = [
    "validate_examples", "row_problems", "check_split_possible", "check_eval_labels",
    "UnseenLabel", "format_lines", "token_check", "TokenCheck", "UNKNOWN_TOKEN_WARNING", "unknown_pieces",
]

# Tokenize in batches so a large file never holds all token ids at once.
_TOKENIZE_BATCH = 512


@dataclass(frozen=True)
class UnseenLabel:
    """A label found in evaluation data that never appears in the training data."""

    file: str
    column: str
    label: str
    lines: list[int]

    def __str__(self) -> str:
        rows = "row" if len(self.lines) == 1 else "rows"
        return (f"{self.file}, column '{self.column}': the label '{self.label}' never appears in the "
                f"training data ({len(self.lines)} {rows}: {format_lines(self.lines)}); "
                "the model cannot predict it, so these rows will be scored as errors")


def format_lines(lines: Sequence[Any], limit: int = 10) -> str:
    """``"lines 4, 9, 12, ..."`` (or ``"line 4"``), showing at most ``limit`` numbers."""
    shown = ", ".join(str(n) for n in lines[:limit])
    more = ", ..." if len(lines) > limit else ""
    return f"{'line' if len(lines) == 1 else 'lines'} {shown}{more}"


def _label_text(label: Any) -> str:
    return "|".join(label) if isinstance(label, list) else str(label)


def row_problems(
    example: Example, *, file: str, columns: ColumnSpec = ColumnSpec(), require_labels: bool = True,
) -> list[Problem]:
    """Problems of one example on its own: empty text or pair, missing label.

    Example:
        >>> row_problems(Example(" ", "a", line=2), file="d.csv")[0].reason
        'the text is missing or empty'
    """
    problems = []
    if not example.text or not example.text.strip():
        problems.append(Problem(file, example.line, columns.text, "the text is missing or empty"))
    if columns.text_pair is not None and (not example.text_pair or not example.text_pair.strip()):
        problems.append(Problem(file, example.line, columns.text_pair, "the second text (pair) is missing or empty"))
    if require_labels and example.label is None:
        problems.append(Problem(file, example.line, columns.label, "the label is missing"))
    return problems


def validate_examples(
    examples: Sequence[Example],
    *,
    file: str = "<data>",
    task: str = "classification",
    columns: ColumnSpec = ColumnSpec(),
    require_labels: bool = True,
    tokenizer: Any = None,
    max_length: int | None = None,
) -> tuple[list[Problem], list[str]]:
    """Check parsed examples and return ``(problems, warnings)``.

    Problems: empty texts, missing labels (when ``require_labels``), copies of one text
    with different labels (every line involved), and a label column with a single class
    (classification/multilabel; a whole-file problem with ``line=None``). Warnings, when a
    ``tokenizer`` is given: texts longer than ``max_length`` tokens, and a high share of
    unknown tokens (:func:`token_check`).

    Args:
        examples: parsed examples; ``Example.line`` is used in messages.
        file: the file name used in messages.
        task: ``"classification"``, ``"multilabel"`` or ``"regression"``.
        columns: the column names used in messages.
        require_labels: whether a missing label is a problem.
        tokenizer: a Hugging Face tokenizer, used only to count tokens.
        max_length: the model's maximum length in tokens (default: the tokenizer's).

    Returns:
        Problems sorted with whole-file problems first, then by line; warning strings.

    Example:
        >>> problems, warnings = validate_examples([Example("hi", "a", line=2)], file="d.csv")
        >>> print(problems[0])
        d.csv, column 'label': all labelled rows have the same label 'a'; ...
    """
    problems: list[Problem] = []
    clean = []
    for example in examples:
        found = row_problems(example, file=file, columns=columns, require_labels=require_labels)
        problems.extend(found)
        if not found:
            clean.append(example)
    conflicts, conflicting = _conflicting_duplicates(clean, file, columns.label)
    problems.extend(conflicts)
    kept = [e for e in clean if id(e) not in conflicting]
    if label_format(task).classes:
        problems.extend(single_class_problems(examples, file, columns.label))
    warnings = token_check(kept, file, tokenizer, max_length).warnings
    problems.sort(key=lambda p: (p.line is not None, p.line if p.line is not None else 0))
    return problems, warnings


def _conflicting_duplicates(
    examples: Sequence[Example], file: str, column: str,
) -> tuple[list[Problem], set[int]]:
    """Problems for every copy of a text that has different labels, and their ids."""
    groups: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for example in examples:
        if example.label is not None:
            groups[(example.text.strip(), (example.text_pair or "").strip())].append(example)
    problems, conflicting = [], set()
    for group in groups.values():
        labels = {_label_key(e.label) for e in group}
        if len(labels) < 2:
            continue
        for example in group:
            conflicting.add(id(example))
            others = [f"line {e.line} '{_label_text(e.label)}'" for e in group if e is not example]
            others = ", ".join(others[:10]) + (", ..." if len(others) > 10 else "")
            reason = (f"the same text appears with a different label elsewhere ({others}; here "
                      f"'{_label_text(example.label)}'); give every copy the same label or remove copies")
            problems.append(Problem(file, example.line, column, reason))
    return problems, conflicting


def _label_key(label: Any) -> Any:
    return frozenset(label) if isinstance(label, list) else label


def single_class_problems(examples: Sequence[Example], file: str, column: str = "label") -> list[Problem]:
    """A whole-file problem when the labelled examples hold only one class."""
    classes: set[str] = set()
    for example in examples:
        if isinstance(example.label, list):
            classes.update(example.label)
        elif example.label is not None:
            classes.add(example.label)
    if len(classes) != 1:
        return []
    reason = (f"all labelled rows have the same label '{next(iter(classes))}'; a classifier "
              "needs at least two different labels (is this the right label column?)")
    return [Problem(file, None, column, reason)]


UNKNOWN_TOKEN_WARNING = 0.02
"""Above this share of ``[UNK]`` tokens a data set gets a warning: the model cannot read them."""


@dataclass(frozen=True)
class TokenCheck:
    """What the tokenizer makes of a data set's texts.

    Attributes:
        warnings: texts that will be truncated; a high share of unknown tokens.
        unk_share: unknown tokens (``[UNK]``) over all tokens, special tokens not counted;
            None without a tokenizer, or for one that has no unknown token.
        unknown: the most frequent pieces of text that became ``[UNK]``, most frequent first.
    """

    warnings: list[str]
    unk_share: float | None = None
    unknown: list[str] = dataclasses.field(default_factory=list)


def token_check(examples: Sequence[Example], file: str, tokenizer: Any, max_length: int | None,
                truncation: bool = True) -> TokenCheck:
    """Tokenize the texts once (in batches) and report long texts and unknown tokens.

    Long texts are reported in the user's terms: which setting reads more of them
    (``training.max_length``) and how far the model itself can go; texts longer than the
    model's own limit are counted apart (no setting keeps their end). ``truncation=False``
    (token classification, which cuts long sentences into windows) skips that part. Above
    :data:`UNKNOWN_TOKEN_WARNING` unknown tokens, a warning names the most frequent unknown
    characters and what to do.
    """
    if tokenizer is None:
        return TokenCheck([])
    model_limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(model_limit, int) or model_limit > 1_000_000:  # "no limit" sentinel
        model_limit = None
    if max_length is None:
        max_length = model_limit
    counts = _TokenCounts(tokenizer)
    long_lines, longest, beyond = [], 0, 0
    for start in range(0, len(examples), _TOKENIZE_BATCH):
        batch = examples[start:start + _TOKENIZE_BATCH]
        texts = [e.text for e in batch]
        pairs = [e.text_pair or "" for e in batch] if any(e.text_pair for e in batch) else None
        for e, ids in zip(batch, counts.add(texts, pairs), strict=True):
            if truncation and max_length is not None and len(ids) > max_length:
                long_lines.append(e.line)
                longest = max(longest, len(ids))
                beyond += model_limit is not None and len(ids) > model_limit
    warnings = []
    share = counts.share
    top = [piece for piece, _ in counts.pieces.most_common(10)]
    if share is not None and share > UNKNOWN_TOKEN_WARNING:
        shown = f" (most often: {' '.join(top)})" if top else ""
        warnings.append(
            f"{file}: {share:.1%} of the tokens are unknown to the base model's vocabulary ([UNK]){shown}; "
            "the model cannot tell those apart. Teach the model those pieces with `domainfit pretrain --data FILE "
            "--extend-vocab --output BASE`, then train with --model BASE, or use a base model whose vocabulary covers "
            "this text (docs/training.md, 'Continued pre-training').")
    if long_lines:
        warnings.insert(0, _truncation_message(file, long_lines, longest, beyond, max_length, model_limit))
    return TokenCheck(warnings, share, top)


class _TokenCounts:
    """Tokens, unknown tokens and the text pieces that became unknown, over batches of texts."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.unk_id = getattr(tokenizer, "unk_token_id", None)
        self.offsets = bool(getattr(tokenizer, "is_fast", False)) and self.unk_id is not None
        self.tokens = self.unknown = 0
        self.pieces: Counter = Counter()

    @property
    def share(self) -> float | None:
        return self.unknown / self.tokens if self.tokens and self.unk_id is not None else None

    def add(self, texts: list[str], pairs: list[str] | None = None) -> list[list[int]]:
        """Count one batch; returns its token ids (with the special tokens)."""
        # verbose=False: we report long texts ourselves, once, in the user's terms
        encoded = self.tokenizer(texts, pairs, truncation=False, add_special_tokens=True, verbose=False,
                                 return_special_tokens_mask=True, return_offsets_mapping=self.offsets)
        for n, ids in enumerate(encoded["input_ids"]):
            special = encoded["special_tokens_mask"][n]
            self.tokens += len(ids) - sum(special)
            if self.unk_id is None:
                continue
            found = [k for k, i in enumerate(ids) if i == self.unk_id and not special[k]]
            self.unknown += len(found)
            if self.offsets and found:
                spans, seq = encoded["offset_mapping"][n], encoded.sequence_ids(n)
                for k in found:
                    source = texts[n] if seq[k] in (0, None) else (pairs[n] if pairs else "")
                    piece = source[spans[k][0]:spans[k][1]]
                    if piece:
                        self.pieces[piece] += 1
        return encoded["input_ids"]


def unknown_pieces(tokenizer: Any, texts: Sequence[str]) -> tuple[Counter, float | None]:
    """The pieces of ``texts`` the tokenizer reads as unknown (``[UNK]``), with their counts,
    and the share of unknown tokens (None for a tokenizer without an unknown token). Needs
    a fast tokenizer to name the pieces; a slow one gives the share only."""
    counts = _TokenCounts(tokenizer)
    for start in range(0, len(texts), _TOKENIZE_BATCH):
        counts.add(list(texts[start:start + _TOKENIZE_BATCH]))
    return counts.pieces, counts.share


def _truncation_message(file: str, long_lines: list, longest: int, beyond: int, max_length: int,
                        model_limit: int | None) -> str:
    count = len(long_lines)
    noun = "text is" if count == 1 else "texts are"
    message = (f"{file}: {count} {noun} longer than the maximum of {max_length} tokens and will be truncated "
               f"({format_lines(long_lines)})")
    if model_limit is not None and max_length < model_limit:
        suggest = min(model_limit, -(-longest // 64) * 64)
        message += (f"; to read more of them, --set training.max_length={suggest} (this model reads at most "
                    f"{model_limit} tokens; longer runs are slower)")
    if beyond:
        message += (f"; {beyond} of them are longer than the model's own limit of {model_limit} tokens and lose "
                    "their end whatever the setting")
    return message


def check_split_possible(
    examples: Sequence[Example], val_fraction: float, *, file: str = "<data>", column: str = "label",
) -> list[Problem]:
    """Problems that make a stratified validation split impossible.

    A stratified split needs at least 2 examples per class (one for training, one that
    may go to validation). Regression and unlabelled data need no stratification.

    Args:
        examples: the training examples.
        val_fraction: the share held out for validation; 0 means no split, so no problems.
        file: the file name used in messages.
        column: the label column used in messages.

    Returns:
        One problem per class with fewer than 2 examples, listing its lines.

    Example:
        >>> check_split_possible([Example("a", "x", line=2), Example("b", "y", line=3),
        ...                       Example("c", "y", line=4)], 0.2)[0].reason[:24]
        "the class 'x' has only 1"
    """
    if val_fraction <= 0:
        return []
    lines_by_class: dict[str, list[Any]] = defaultdict(list)
    for example in examples:
        key = class_key(example.label)
        if key is not None:
            lines_by_class[key].append(example.line)
    problems = []
    for label, lines in sorted(lines_by_class.items()):
        if len(lines) < 2:
            reason = (f"the class '{label}' has only {len(lines)} example ({format_lines(lines)}); a "
                      "stratified validation split needs at least 2 per class: add examples, remove "
                      "the class, or give a separate validation file")
            problems.append(Problem(file, lines[0], column, reason))
    return problems


def check_eval_labels(train_labels: Iterable[Any], eval_dataset: Dataset) -> list[UnseenLabel]:
    """Labels in evaluation data that never appear in training; reported, never fatal.

    Args:
        train_labels: the training labels (strings, or lists of strings for multilabel).
        eval_dataset: the loaded evaluation data.

    Returns:
        One :class:`UnseenLabel` per unseen label, with every line it appears on. Empty
        for regression data.

    Example:
        >>> [str(w) for w in check_eval_labels(["a", "b"], test_set)]  # doctest: +SKIP
        ["test.csv, column 'label': the label 'c' never appears in the training data ..."]
    """
    seen: set[str] = set()
    for label in train_labels:
        seen.update(label if isinstance(label, list) else [label])
    unseen: dict[str, list[Any]] = defaultdict(list)
    for example in eval_dataset.examples:
        labels = example.label if isinstance(example.label, list) else [example.label]
        for label in labels:
            if isinstance(label, str) and label not in seen:
                unseen[label].append(example.line)
    column = eval_dataset.columns.label
    return [UnseenLabel(eval_dataset.source, column, label, lines) for label, lines in unseen.items()]
