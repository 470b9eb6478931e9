"""Token classification (NER): one BIO tag per word.

Words are cut into sub-words by the model's tokenizer; the first sub-word of each word
carries the word's tag and the others are ignored by the loss (-100), as are the special
tokens. A sentence longer than the model's maximum is cut into windows at word
boundaries (never inside an entity when training), so no word is lost; predictions of the
windows are put back together per sentence.

Labels are ``["O", "B-T1", "I-T1", "B-T2", "I-T2", ...]`` (types sorted), so a tag's index
alone says its type and prefix: index ``1 + 2t`` is ``B-`` of type ``t``, ``2 + 2t`` is
``I-``. Metrics follow seqeval's conventions (conlleval): an entity counts only when its
type and both ends match exactly.

An uncased tokenizer (the default encoder's) reads "Apple" as "apple", yet capitals are much of
what marks an entity in user-written text. With ``training.case_markers`` (on by default) a
word written with a capital gets one more piece after its own, a spare token of the vocabulary
(:data:`CASE_MARKERS`: one for a capitalised word, one for a word in capitals), which the model
learns to read like any other piece; the loss ignores it. The artifact records it as the task
variant ``case-markers``, so that predictions mark words the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import DataError, Problem, RequestError
from ..data.tokens import entities_from_tags, repair_bio, split_words, word_split_mode
from .base import Task, check_count, check_text

__all__ = ["CASE_MARKERS", "TokenClassificationTask", "case_marker_ids", "entity_metrics", "words_example"]

CASE_MARKERS = ("[unused1]", "[unused2]")
"""The spare vocabulary tokens that mark a capitalised word ("Paris") and a word in capitals
("NASA"), in BERT-style uncased vocabularies."""
CASE_VARIANT = "case-markers"


def case_marker_ids(tokenizer) -> tuple[int, int] | None:
    """The ids of :data:`CASE_MARKERS` where ``tokenizer`` lowercases ("Paris" and "paris" give
    the same ids) and its vocabulary has both as tokens of their own; else None (a cased
    tokenizer sees capitals already)."""
    try:
        if tokenizer("Paris", add_special_tokens=False)["input_ids"] != tokenizer(
                "paris", add_special_tokens=False)["input_ids"]:
            return None
        ids = tuple(tokenizer.convert_tokens_to_ids(token) for token in CASE_MARKERS)
    except (AttributeError, TypeError):
        return None
    unknown = getattr(tokenizer, "unk_token_id", None)
    if any(not isinstance(i, int) or i == unknown for i in ids) or ids[0] == ids[1]:
        return None
    return ids  # type: ignore[return-value]


def _case(word: str) -> int | None:
    """0: starts with a capital ("Paris", "I"); 1: two or more letters, all capitals ("NASA");
    None: no capital first."""
    if not word[:1].isupper():
        return None
    return 1 if len(word) > 1 and word.isupper() else 0


@dataclass
class _Window:
    example: int  # index of the sentence
    first_word: int  # index of the window's first word in the sentence
    positions: list[int | None]  # per word of the window: position of its first sub-word, or None


def _special_layout(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids a single sequence gets before and after its words."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    return [], []


def _windows(tokenizer, examples, max_length: int, tags: list[list[str]] | None, case_markers: bool = False):
    """Encode every sentence as one or more windows of at most ``max_length`` positions (a
    capitalised word followed by its case marker, with ``case_markers``)."""
    markers = case_marker_ids(tokenizer) if case_markers else None
    word_lists = [list(e.tokens) for e in examples]
    if not word_lists:
        return [], []
    encoded = tokenizer(word_lists, is_split_into_words=True, add_special_tokens=False, truncation=False,
                        verbose=False)
    prefix, suffix = _special_layout(tokenizer)
    before = len(prefix)
    budget = max(1, max_length - len(prefix) - len(suffix))
    rows, windows = [], []
    for n, words in enumerate(word_lists):
        ids = encoded["input_ids"][n]
        pieces: list[list[int]] = [[] for _ in words]
        for position, word in enumerate(encoded.word_ids(n)):
            if word is not None:
                pieces[word].append(ids[position])
        if markers is not None:
            for word, text in enumerate(words):
                kind = _case(text)
                if kind is not None and pieces[word]:
                    pieces[word].append(markers[kind])
        if not words:  # a text with no visible character: one empty window, no entities
            rows.append(prefix + suffix)
            windows.append(_Window(n, 0, []))
            continue
        start = 0
        while start < len(words):
            end, used = start, 0
            while end < len(words) and used + max(1, len(pieces[end][:budget])) <= budget:
                used += len(pieces[end][:budget])
                end += 1
            end = max(end, start + 1)
            if tags is not None and end < len(words):
                # do not cut an entity in two: end the window before the entity's first word
                back = end
                while back > start + 1 and tags[n][back].startswith("I-"):
                    back -= 1
                end = back
            row, positions = [], []
            for word in range(start, end):
                piece = pieces[word][:budget]
                positions.append(before + len(row) if piece else None)
                row.extend(piece)
            rows.append(prefix + row + suffix)
            windows.append(_Window(n, start, positions))
            start = end
    return rows, windows


class TokenClassificationTask(Task):
    name = "token-classification"
    primary_metric = "f1"
    model_kind = "token"
    # WNUT-17 validation entity F1: 0.565 with the classification defaults (label smoothing
    # 0.1), 0.577 without smoothing; see docs/training.md
    training_defaults = {"training.label_smoothing": 0.0}

    def __init__(self, case_markers: bool = False):
        self.case_markers = case_markers
        self.variant = CASE_VARIANT if case_markers else None

    def for_tokenizer(self, tokenizer, enabled: bool = True) -> TokenClassificationTask:
        """With case markers where ``enabled`` and the tokenizer lowercases and has spare
        tokens for them (:func:`case_marker_ids`); else without."""
        wanted = bool(enabled and case_marker_ids(tokenizer) is not None)
        return self if wanted == self.case_markers else TokenClassificationTask(case_markers=wanted)

    def label_list(self, targets):
        types = sorted({tag[2:] for tags in targets for tag in tags if tag != "O"})
        return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in "BI"]

    def check_label_set(self, labels, source, column):
        if len(labels) < 2:
            reason = "no word of the training data is tagged as an entity (every tag is 'O')"
            raise DataError([Problem(source, None, column, reason)])

    def model_extras(self, examples):
        """How raw text is cut into words at prediction time, as it was in the training data."""
        return {"word_split": word_split_mode(examples)}

    def num_outputs(self, labels):
        return len(labels)

    def encode(self, targets, labels):
        index = {name: i for i, name in enumerate(labels)}
        # A type unseen in training maps to O (the model cannot predict it; metrics count it missed).
        return [[index.get(tag, 0) for tag in tags] for tags in targets]

    def encode_examples(self, tokenizer, examples, labels, max_length):
        from ..data.batching import Encoded

        gold = [e.label for e in examples] if examples and examples[0].label is not None else None
        rows, windows = _windows(tokenizer, examples, max_length, gold, self.case_markers)
        enc = Encoded(input_ids=rows)
        enc.windows = windows
        if gold is not None:
            ids = self.encode(gold, labels)
            targets = []
            for window, row in zip(windows, rows):
                target = [-100] * len(row)
                for k, position in enumerate(window.positions):
                    if position is not None:
                        target[position] = ids[window.example][window.first_word + k]
                targets.append(target)
            enc.targets = targets
        return enc

    def loss(self, logits, targets, label_smoothing=0.0):
        width = min(logits.shape[1], targets.shape[1])
        return F.cross_entropy(logits[:, :width].float().reshape(-1, logits.shape[-1]),
                               targets[:, :width].reshape(-1), ignore_index=-100, label_smoothing=label_smoothing)

    def probabilities(self, logits):
        return logits.float().softmax(-1)

    def decode(self, scores, labels, top_k=3):
        """Per sentence, its words' probability rows (``None`` for a word the tokenizer
        dropped) → ``{"tags", "confidences"}``, tags repaired to valid BIO."""
        out = []
        for per_word in scores:
            tags, confidences = [], []
            for p in per_word:
                if p is None:  # a word the tokenizer dropped entirely (e.g. a control character)
                    tags.append("O")
                    confidences.append(1.0)
                else:
                    best = int(p.argmax())
                    tags.append(labels[best])
                    confidences.append(float(p[best]))
            out.append({"tags": repair_bio(tags), "confidences": confidences})
        return out

    def quick_score(self, logits, targets):
        """Entity-level micro F1 over the first sub-words (tags read from their indices)."""
        if isinstance(targets, list):
            width = logits.shape[1]
            targets = torch.tensor([t[:width] + [-100] * (width - len(t)) for t in targets], dtype=torch.long)
        pred = logits.argmax(-1)
        gold_tags, pred_tags = [], []
        for p_row, g_row in zip(pred.tolist(), targets.tolist()):
            keep = [i for i, g in enumerate(g_row) if g != -100]
            gold_tags.append([_index_tag(g_row[i]) for i in keep])
            pred_tags.append(repair_bio([_index_tag(p_row[i]) for i in keep]))
        return entity_metrics(gold_tags, pred_tags)["f1"]

    def predict_examples(self, model, tokenizer, examples, labels, max_length, batch_size=64):
        """Per example ``{"tags", "entities", "tokens"}``; scores are per-word probabilities."""
        from ..modeling.predict import predict_logits

        enc = self.encode_examples(tokenizer, [_unlabelled(e) for e in examples], labels, max_length)
        logits = predict_logits(model, enc, tokenizer.pad_token_id, batch_size) if len(enc) else torch.empty(0)
        probs = logits.float().softmax(-1) if len(enc) else logits
        word_probs: list[list[torch.Tensor | None]] = [[None] * len(e.tokens) for e in examples]
        for w, window in enumerate(enc.windows):
            for k, position in enumerate(window.positions):
                if position is not None:
                    word_probs[window.example][window.first_word + k] = probs[w, position]
        predictions = []
        for example, decoded in zip(examples, self.decode(word_probs, labels)):
            predictions.append({"tags": decoded["tags"], "tokens": list(example.tokens),
                                "entities": _entities(example, decoded["tags"], decoded["confidences"])})
        return predictions, word_probs

    def metrics(self, targets, predictions, scores, labels):
        return entity_metrics([list(t) for t in targets], [p["tags"] for p in predictions])

    def predict_texts(self, model, tokenizer, texts, pairs, labels, max_length, *, top_k=3, batch_size=64,
                      word_split="words"):
        """Raw texts are cut into words (as the training data was), then tagged: per text
        ``entities`` with character offsets, plus ``tokens`` and ``tags``."""
        examples = [words_example(t, word_split) for t in texts]
        return self.predict_examples(model, tokenizer, examples, labels, max_length, batch_size)[0]

    def report_data(self, examples, scored, labels):
        """Entities, not tag sequences: per sentence ``(text, type, start, end)``."""
        def spans(example, tags):
            return [(example.text[example.offsets[first][0]:example.offsets[last - 1][1]], kind, first, last)
                    for kind, first, last in entities_from_tags(tags)]

        gold = [spans(e, e.label) for e in examples]
        predicted = [spans(e, p["tags"]) for e, p in zip(examples, scored.predictions)]
        return self.report_fields(examples, gold, predicted)

    def parity_outputs(self, model, tokenizer, examples, labels, max_length):
        """The probability rows of every word of every example."""
        _, word_probs = self.predict_examples(model, tokenizer, examples, labels, max_length)
        return np.array([p.numpy() for row in word_probs for p in row if p is not None])

    def request_items(self, request, limits):
        """``tokens`` (words split by the sender) or ``texts``."""
        tokens = request.get("tokens")
        if tokens is None:
            return super().request_items(request, limits)
        check_count(tokens, "tokens", limits)
        for n, words in enumerate(tokens):
            if not words or any(not w.strip() for w in words):
                raise RequestError(f"tokens[{n}] is empty or holds an empty word")
            check_text(" ".join(words), f"tokens[{n}]", limits)
        return [{"tokens": words} for words in tokens]

    def log_fields(self, item, answer):
        """The sentence, the entity types found (``|``-joined; ``O`` for none) and the lowest
        entity score."""
        text = item["text"] if "text" in item else " ".join(item["tokens"])
        entities = answer.get("entities") or []
        scores = [e["score"] for e in entities if e.get("score") is not None]
        return text, "|".join(sorted({e["label"] for e in entities})) or "O", min(scores) if scores else None

    def answer_items(self, runtime, items):
        out: list = [None] * len(items)
        words = [n for n, i in enumerate(items) if "tokens" in i]
        texts = [n for n, i in enumerate(items) if "tokens" not in i]
        if words:
            for n, pred in zip(words, runtime.predict_tokens([items[n]["tokens"] for n in words])):
                out[n] = pred
        if texts:
            for n, pred in zip(texts, runtime.predict([items[n]["text"] for n in texts])):
                out[n] = pred
        return out


def words_example(text: str, mode: str = "words"):
    """An unlabelled example from raw text: its words and their character offsets."""
    from ..data.types import Example

    offsets = split_words(text, mode)
    return Example(text=text, tokens=[text[s:e] for s, e in offsets], offsets=offsets)


def _unlabelled(example):
    from dataclasses import replace

    return replace(example, label=None)


def _index_tag(index: int) -> str:
    if index == 0:
        return "O"
    return f"{'B' if (index - 1) % 2 == 0 else 'I'}-{(index - 1) // 2}"


def _entities(example, tags, confidences) -> list[dict]:
    out = []
    for kind, first, last in entities_from_tags(tags):
        start, end = example.offsets[first][0], example.offsets[last - 1][1]
        score = sum(confidences[first:last]) / (last - first)
        out.append({"label": kind, "start": start, "end": end, "text": example.text[start:end],
                    "score": round(score, 6)})
    return out


def entity_metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1 (micro over all entities, per type, macro over
    types) and token accuracy, for valid BIO sequences (seqeval's default conventions).

    Example:
        >>> entity_metrics([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])["f1"]
        0.0
    """
    from collections import Counter

    true_pos, n_gold, n_pred = Counter(), Counter(), Counter()
    correct_tokens = total_tokens = 0
    for g_tags, p_tags in zip(gold, predicted, strict=True):
        if len(g_tags) != len(p_tags):
            raise ValueError(f"{len(g_tags)} gold tags but {len(p_tags)} predicted tags in one sentence")
        g_set, p_set = set(entities_from_tags(g_tags)), set(entities_from_tags(p_tags))
        for kind, _, _ in g_set:
            n_gold[kind] += 1
        for kind, _, _ in p_set:
            n_pred[kind] += 1
        for kind, _, _ in g_set & p_set:
            true_pos[kind] += 1
        correct_tokens += sum(g == p for g, p in zip(g_tags, p_tags))
        total_tokens += len(g_tags)

    def prf(tp: int, n_p: int, n_g: int) -> tuple[float, float, float]:
        precision = tp / n_p if n_p else 0.0
        recall = tp / n_g if n_g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    per_type = {}
    for kind in sorted(set(n_gold) | set(n_pred)):
        p, r, f = prf(true_pos[kind], n_pred[kind], n_gold[kind])
        per_type[kind] = {"precision": p, "recall": r, "f1": f, "support": n_gold[kind], "predicted": n_pred[kind]}
    p, r, f = prf(sum(true_pos.values()), sum(n_pred.values()), sum(n_gold.values()))
    gold_types = [k for k in per_type if per_type[k]["support"]]
    return {
        "precision": p, "recall": r, "f1": f,
        "macro_f1": sum(per_type[k]["f1"] for k in gold_types) / len(gold_types) if gold_types else 0.0,
        "token_accuracy": correct_tokens / total_tokens if total_tokens else 0.0,
        "entities": sum(n_gold.values()), "predicted_entities": sum(n_pred.values()),
        "per_type": per_type, "n": len(gold), "primary_metric": "f1",
    }
