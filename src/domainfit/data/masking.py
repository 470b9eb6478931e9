"""Unlabelled text for continued pre-training: reading it, and whole-word masking.

Whole-word masking picks *words* (as the tokenizer's pre-tokenizer splits them; a BERT
tokenizer makes each CJK character a word of its own) and masks every sub-word piece of
each picked word, so the model cannot guess a piece from the rest of its word. Of the
picked positions, 80% become the mask token, 10% a random token and 10% stay as they were
(BERT's recipe). Masks are drawn once per pass over the data (``copies``), seeded, so a
resumed run sees the same inputs.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from domainfit.core.errors import DataError, Problem
from domainfit.data.batching import Encoded

__all__ = ["read_texts", "mask_whole_words", "TEXT_SUFFIXES"]

TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")
_MIN_CHARS = 2


def read_texts(source: str | Path, text_column: str = "text") -> tuple[list[str], str, list[str]]:
    """The texts of a file or of every data file under a folder.

    ``.txt`` files hold one text per line; CSV, TSV, JSONL and Parquet files hold them in
    ``text_column`` (a list of words, as in a token-classification file's ``tokens``, is
    joined by spaces; such a file is read from ``tokens`` when it has no ``text``). Empty
    and one-character texts are left out.

    Returns:
        ``(texts, sha256 of the files' bytes in order, file names)``.

    Raises:
        DataError: a missing path, a folder without data files, a file without the column,
            or no usable text at all.
    """
    from domainfit.data.loading import file_sha256, read_rows

    path = Path(source)
    if not path.exists():
        raise DataError([Problem(str(path), None, None, "no such file or folder")])
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES) \
        if path.is_dir() else [path]
    if not files:
        raise DataError([Problem(str(path), None, None, f"the folder holds no data files ({', '.join(TEXT_SUFFIXES)})")])
    texts: list[str] = []
    digest = hashlib.sha256()
    for file in files:
        digest.update(file_sha256(file).encode())
        if file.suffix.lower() == ".txt":
            with open(file, encoding="utf-8", errors="replace") as fh:
                texts += [line.strip() for line in fh]
            continue
        for line, row in read_rows(file):
            column = text_column
            if column not in row and column == "text" and "tokens" in row:
                column = "tokens"  # a token-classification file: its words are the text
            if column not in row:
                raise DataError([Problem(str(file), line, text_column,
                                         f"no column '{text_column}' (columns: {', '.join(row)}); pass --text-column")])
            texts.append(_as_text(row[column]))
    texts = [t for t in texts if len(t) >= _MIN_CHARS]
    if not texts:
        raise DataError([Problem(str(path), None, text_column, "holds no usable text (every text is empty)")])
    return texts, digest.hexdigest(), [str(f) for f in files]


def _as_text(value: Any) -> str:
    """A cell as one text; a list of words (a token-classification row) joined by spaces,
    which a BERT tokenizer splits back into the same words, CJK characters included."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v).strip() for v in value if v is not None and str(v).strip())
    return str(value).strip()


def mask_whole_words(tokenizer: Any, texts: list[str], *, max_length: int, copies: int, seed: int,
                     mask_share: float = 0.15) -> Encoded:
    """``copies`` masked versions of every text (one per pass), as an :class:`Encoded` whose
    ``targets`` hold the original id at masked positions and -100 elsewhere.

    A text longer than ``max_length`` tokens is cut into consecutive windows, so nothing
    of it is lost. Needs a fast tokenizer (for the word of each token).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise DataError([Problem("<tokenizer>", None, None, "whole-word masking needs a fast tokenizer "
                                 "(tokenizer.json); this model has only a slow one")])
    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise DataError([Problem("<tokenizer>", None, None, "the tokenizer has no mask token: the model has no "
                                 "masked-language-model form")])
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    prefix = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
    suffix = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
    budget = max(8, max_length - len(prefix) - len(suffix))
    windows: list[tuple[list[int], list[int]]] = []  # (ids, word of each id)
    for start in range(0, len(texts), 512):
        encoded = tokenizer(texts[start:start + 512], add_special_tokens=False, truncation=False, verbose=False)
        for n, ids in enumerate(encoded["input_ids"]):
            words = encoded.word_ids(n)
            for cut in range(0, len(ids), budget):
                piece = ids[cut:cut + budget]
                if piece:
                    windows.append((piece, [w if w is not None else -1 for w in words[cut:cut + budget]]))
    input_ids: list[list[int]] = []
    targets: list[list[int]] = []
    rng = random.Random(seed)
    for _ in range(copies):
        for ids, words in windows:
            masked, target = list(ids), [-100] * len(ids)
            distinct = sorted(set(words))
            chosen = set(rng.sample(distinct, max(1, round(mask_share * len(distinct)))))
            for k, word in enumerate(words):
                if word not in chosen:
                    continue
                target[k] = ids[k]
                roll = rng.random()
                if roll < 0.8:
                    masked[k] = mask_id
                elif roll < 0.9:
                    masked[k] = rng.choice(vocab)
            input_ids.append(prefix + masked + suffix)
            targets.append([-100] * len(prefix) + target + [-100] * len(suffix))
    return Encoded(input_ids, None, targets)
