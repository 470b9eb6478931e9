"""Why did the model say that? A score per word of the input for one label.

Four methods, all answering in the same shape (``explanation.words``: each word of the input
with its character offsets and a score; higher means the word pushed the model more towards
the target label):

* ``integrated-gradients`` (Sundararajan et al. 2017): the gradient of the target's
  probability along the straight path from a baseline (every word piece replaced by the
  padding token's embedding, the special tokens kept) to the input's word-piece embeddings,
  times the difference, summed over the embedding dimensions. ``steps`` points of a midpoint
  Riemann sum run as one batch. Its scores add up to ``p(input) - p(baseline)``.
* ``gradient-x-input``: the gradient at the input times the input, in one backward pass.
* ``occlusion`` (leave one word out): ``p(input) - p(input without the word)``. It needs only
  predictions, so it also explains ONNX artifacts, models that blend an n-gram companion and
  the zero-shot language-model backend.
* ``deletion`` (greedy deletion): rounds that take out the words whose removal lowers the
  target's score most, given the words already taken out (1 word, then 2, 4, 8, ... up to half
  of them), each round one batch over the words still in. It finds words that matter
  together (two words that each say "positive" do not show in leave-one-out), at about four
  times occlusion's cost; like occlusion, it needs only predictions.

Word pieces are merged back into the words of the input (:func:`~domainfit.data.tokens.split_words`:
word-character runs, each CJK character and punctuation mark alone). A text longer than the
model's maximum is explained for the part the model saw, and the explanation says so.
``auto`` takes the first method of :data:`AUTO_ORDER` the artifact supports: deletion first,
the most faithful method measured (``benchmarks/explanations.py``, against SHAP and LIME:
on Banking77 it removes more of the prediction than both, at under a fifth of their time),
and it needs only predictions, so it explains every artifact the same way. Its cost grows
faster than linearly with the number of words, so for a text of more than
:data:`AUTO_DELETION_WORDS` words ``auto`` uses occlusion, one round, instead (the explanation
names the method used).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from ..core.errors import ConfigError, DomainfitError
from ..data.tokens import remove_spans, split_words

__all__ = ["METHODS", "check_request", "explain", "supported_methods"]

METHODS = ("integrated-gradients", "gradient-x-input", "occlusion", "deletion")
AUTO_ORDER = ("deletion", "occlusion", "integrated-gradients", "gradient-x-input")
"""``auto`` takes the first method of this order that the artifact supports."""
AUTO_DELETION_WORDS = 64
"""``auto`` explains a text of more words than this by occlusion instead of deletion."""


def supported_methods(predictor) -> tuple[str, ...]:
    """The methods this artifact can be explained with: gradients need a torch encoder model
    that reads word pieces (not ONNX, not the zero-shot language-model backend) of a
    sequence task; occlusion needs only predictions."""
    task = predictor.task
    if task.model_kind == "embedding":
        return ()
    model = getattr(predictor.model, "inner", predictor.model)  # a blend: its encoder model
    gradients = (predictor.backend == "torch" and task.model_kind == "sequence" and hasattr(model, "head_logits")
                 and not hasattr(model, "text_logits"))
    if task.model_kind == "token":
        return ("occlusion",)
    return METHODS if gradients else ("occlusion", "deletion")


def _resolve(predictor, method: str) -> str:
    supported = supported_methods(predictor)
    if not supported:
        raise DomainfitError(f"{predictor.path} is a {predictor.task.name} model; explanations are for models "
                             "that predict labels, values or entities (search results have no label to explain).")
    if method == "auto":
        return next(m for m in AUTO_ORDER if m in supported)
    if method not in METHODS:
        raise ConfigError(f"method {method!r}: choose auto or one of {', '.join(METHODS)}.")
    if method not in supported:
        why = ("entities are explained by occlusion" if predictor.task.model_kind == "token"
               else "an ONNX model has no gradients" if predictor.backend != "torch"
               else "this model does not read word pieces through a torch encoder")
        raise ConfigError(f"method {method}: {why}; use {' or '.join(supported)} (or auto).")
    return method


def explain(predictor, texts: list[str], *, pairs: list[str] | None = None, target: str | None = None,
            method: str = "auto", steps: int = 32) -> list[dict[str, Any]]:
    """Predict and explain each text (see :meth:`domainfit.inference.Predictor.explain`)."""
    texts = list(texts)
    chosen = _resolve(predictor, method)
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}.")
    for n, text in enumerate(texts):
        if not text or not text.strip():
            raise ConfigError(f"text {n + 1} is empty: there is nothing to explain.")
    if pairs is not None and any(not p or not p.strip() for p in pairs):
        raise ConfigError("a pair text is empty: there is nothing to explain.")
    _check_target(predictor, target)
    if predictor.task.model_kind == "token":
        return [_explain_entities(predictor, text, target) for text in texts]
    predictions = predictor.predict(texts, pairs)
    out = []
    for n, (text, prediction) in enumerate(zip(texts, predictions)):
        pair = pairs[n] if pairs is not None else None
        started = time.perf_counter()
        column = _target_column(predictor, prediction, target)
        parts = _seen_words(predictor, text, pair)
        used = chosen
        if method == "auto" and chosen == "deletion" and sum(len(p["spans"]) for p in parts) > AUTO_DELETION_WORDS:
            used = "occlusion"  # a long text: one round, not greedy deletion's many
        if used in ("occlusion", "deletion"):
            scores, base = _removal(predictor, pair, parts, column, greedy=used == "deletion")
        else:
            scores, base = _gradients(predictor, text, pair, parts, column, used, steps)
        explanation = {"method": used, "target": _target_name(predictor, column),
                       "target_score": round(float(base), 6), "words": _words(parts, scores),
                       "seconds": round(time.perf_counter() - started, 4)}
        if any(p["truncated"] for p in parts):
            explanation["truncated"] = True
            explanation["note"] = (f"longer than the model's maximum of {predictor.max_length} tokens: the words "
                                   "the model saw are explained, the rest is left out")
        if _blended(predictor) and used not in ("occlusion", "deletion"):
            explanation["note"] = "explains the encoder; the blended n-gram companion is not in the gradients"
        out.append({"text": text, **({"pair": pair} if pair is not None else {}), **prediction,
                    "explanation": explanation})
    return out


# ---------------------------------------------------------------------------- targets


def check_request(predictor, target: str | None, method: str) -> str:
    """Check what an explanation asks for before any work; returns the method ``auto``
    resolves to.

    Raises:
        ConfigError / DomainfitError: a target that is not a label (an entity type for token
            classification), a method the artifact cannot support, a model without labels.
    """
    chosen = _resolve(predictor, method)
    _check_target(predictor, target)
    return chosen


def _check_target(predictor, target: str | None) -> None:
    labels = predictor.labels
    if predictor.task.model_kind == "token":  # a target is an entity type, the labels are its tags
        labels = sorted({tag[2:] for tag in labels if tag != "O"})
    if target is not None and predictor.task.name != "regression" and target not in labels:
        shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
        raise ConfigError(f"target {target!r} is not a label of this model ({shown}).")


def _target_column(predictor, prediction: dict, target: str | None) -> int | None:
    """The output column to explain: the asked-for label, else the predicted one (for a
    multi-label model the most probable label); None for a single value (regression)."""
    if predictor.task.name == "regression" or not predictor.labels:
        return None
    if target is not None:
        return predictor.labels.index(target)
    best = prediction["top_k"][0]["label"] if prediction.get("top_k") else prediction["label"]
    return predictor.labels.index(best)


def _target_name(predictor, column: int | None) -> str:
    if column is None:
        return predictor.labels[0] if predictor.labels else "value"
    return predictor.labels[column]


def _pick(scores: torch.Tensor | np.ndarray, column: int | None):
    """The target's score from user-facing scores ``(n, labels)`` or values ``(n,)``."""
    return scores[:, column] if column is not None else scores.reshape(len(scores), -1)[:, 0]


def _blended(predictor) -> bool:
    return hasattr(predictor.model, "inner")


# ---------------------------------------------------------------------------- words


def _seen_words(predictor, text: str, pair: str | None) -> list[dict]:
    """The words of the text (and of the pair text) with their character offsets, and which
    of them the model saw (a long text is truncated)."""
    seen = _seen_ends(predictor, text, pair)
    parts = []
    for part, value in (("text", text), ("pair", pair)):
        if value is None:
            continue
        spans = split_words(value, predictor.word_split)
        limit = seen[0 if part == "text" else 1]
        kept = [(s, e) for s, e in spans if limit is None or s < limit]
        parts.append({"part": part, "text": value, "spans": kept, "truncated": len(kept) < len(spans)})
    return parts


def _seen_ends(predictor, text: str, pair: str | None) -> tuple[int | None, int | None]:
    """Per text, the character where what the model saw ends (None: all of it)."""
    tokenizer = predictor.tokenizer
    full = tokenizer(text, pair, truncation=False, verbose=False)["input_ids"]
    if len(full) <= predictor.max_length:
        return None, None
    if not getattr(tokenizer, "is_fast", False):  # no offsets: a rough cut by share of pieces
        share = predictor.max_length / len(full)
        return int(len(text) * share), (int(len(pair) * share) if pair is not None else None)
    enc = tokenizer(text, pair, truncation=True, max_length=predictor.max_length, return_offsets_mapping=True)
    ends: list[int | None] = [0, 0]
    for (start, end), seq in zip(enc["offset_mapping"], enc.sequence_ids()):
        if seq is not None and end > start:
            ends[seq] = max(ends[seq] or 0, end)
    return ends[0], ends[1]


def _words(parts: list[dict], scores: list[np.ndarray]) -> list[dict]:
    words = []
    for part, values in zip(parts, scores):
        for (start, end), score in zip(part["spans"], values):
            word = {"word": part["text"][start:end], "start": start, "end": end, "score": round(float(score), 6)}
            if len(parts) > 1:
                word["part"] = part["part"]
            words.append(word)
    return words


# ---------------------------------------------------------------------------- occlusion and deletion


def _removal(predictor, pair: str | None, parts: list[dict], column: int | None, greedy: bool):
    """Scores from taking words out. One round is leave-one-out over the words still in, as
    one batch: a word scores ``p(text) - p(text without it)`` after the words already taken
    out. Occlusion is the first round alone. Deletion (``greedy``) then takes out the words
    with the largest drops until half of the words are out (1 word, then 2, 4, 8, ... in all):
    a word taken out keeps the drop of its round, the others their drop in the last round, and
    the scores then follow the order of removal (the words taken out first, in that order, then
    the others by their drop): where a later drop is larger than an earlier one (words that
    matter only together), it is lowered to just below the one before it, so that the top k
    words of the explanation are the k words whose removal was found to matter most."""
    words = [(p, i) for p, part in enumerate(parts) for i in range(len(part["spans"]))]
    until = max(1, math.ceil(len(words) / 2)) if greedy else 1

    def variant(removed: set[int]) -> list[str]:
        cut: list[list] = [[] for _ in parts]
        for w in removed:
            p, i = words[w]
            cut[p].append(parts[p]["spans"][i])
        return [remove_spans(part["text"], cut[p]) for p, part in enumerate(parts)]

    scores = np.zeros(len(words))
    removed: list[int] = []
    base, size = None, 1
    while True:
        rest = [w for w in range(len(words)) if w not in removed]
        batch = [variant(set(removed))] + [variant({*removed, w}) for w in rest]
        values = _pick(predictor.scores([b[0] for b in batch], [b[1] for b in batch] if pair is not None else None),
                       column)
        values = np.asarray(values, dtype=np.float64)
        base = values[0] if base is None else base
        scores[rest] = values[0] - values[1:]
        removed += [rest[q] for q in np.argsort(-scores[rest], kind="stable")[:size - len(removed)]]
        if size >= until:
            break
        size = min(2 * size, until)
    if greedy:
        rest = sorted((w for w in range(len(words)) if w not in removed), key=lambda w: -scores[w])
        previous = math.inf
        for w in removed + rest:  # ranked as found; 1e-6 apart, which the 6-decimal output keeps
            scores[w] = previous = min(round(float(scores[w]), 6), round(previous - 1e-6, 6))
    out, at = [], 0
    for part in parts:
        out.append(scores[at:at + len(part["spans"])])
        at += len(part["spans"])
    return out, base


# ---------------------------------------------------------------------------- gradients


def _gradients(predictor, text: str, pair: str | None, parts: list[dict], column: int | None, method: str,
               steps: int):
    """Integrated gradients or gradient × input on the word-piece embeddings, summed per word."""
    tokenizer = predictor.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"method {method}: this tokenizer gives no character offsets; use occlusion.")
    model = getattr(predictor.model, "inner", predictor.model)
    enc = tokenizer(text, pair, truncation=True, max_length=predictor.max_length, return_offsets_mapping=True,
                    return_tensors="pt")
    offsets, sequences = enc.pop("offset_mapping")[0].tolist(), enc.sequence_ids(0)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if "token_type_ids" in inputs and pair is None:
        inputs.pop("token_type_ids")
    ids = inputs["input_ids"]
    content = torch.tensor([s is not None for s in sequences])
    layer = model.encoder.get_input_embeddings()
    with torch.no_grad():
        embedded = layer(ids)[0].float()  # (L, H)
        pad = torch.full_like(ids, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        baseline = torch.where(content[:, None], layer(pad)[0].float(), embedded)
    if method == "integrated-gradients":
        alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
        path = baseline + alphas[:, None, None] * (embedded - baseline)
    else:
        path = embedded[None]
    path.requires_grad_(True)
    count = path.shape[0]
    extra = {k: v.expand(count, -1) for k, v in inputs.items() if k == "token_type_ids"}
    mask = inputs["attention_mask"]
    if model.training:  # a served model is shared: never switch modes, only refuse a training one
        raise DomainfitError("explain a model in evaluation mode (model.eval()).")
    with torch.enable_grad():  # inputs_embeds, not a hook: other threads may be predicting with this model
        pooled = model.embed(None, mask.expand(count, -1), inputs_embeds=path.to(layer.weight.dtype), **extra)
        target = _pick(predictor.task.probabilities(model.head_logits(pooled)), column)
        (grad,) = torch.autograd.grad(target.sum(), path)
    if method == "integrated-gradients":
        per_piece = ((embedded - baseline) * grad.mean(0)).sum(-1)
        with torch.no_grad():
            base = _pick(predictor.task.probabilities(model(**inputs)), column)[0]
    else:
        per_piece = (embedded * grad[0]).sum(-1)
        base = target[0].detach()
    per_piece = per_piece.detach().numpy()
    out = []
    for part_no, part in enumerate(parts):
        sums = np.zeros(len(part["spans"]))
        starts = np.array([s for s, _ in part["spans"]])
        ends = np.array([e for _, e in part["spans"]])
        for piece, ((start, end), seq) in enumerate(zip(offsets, sequences)):
            if seq != part_no or end <= start:
                continue
            hit = np.flatnonzero((starts <= start) & (start < ends))
            if len(hit) == 0:  # a piece inside a space-free run the word split cut differently
                hit = np.flatnonzero((starts < end) & (start < ends))
            if len(hit):
                sums[hit[0]] += per_piece[piece]
        out.append(sums)
    return out, float(base.detach()) if torch.is_tensor(base) else float(base)


# ---------------------------------------------------------------------------- entities


def _explain_entities(predictor, text: str, target: str | None) -> dict:
    """Token classification: each entity found, explained by occluding every other word
    (replaced by the unknown token, so that word positions stay) and watching the mean
    probability of the entity's tags."""
    from ..tasks.token import words_example

    started = time.perf_counter()
    example = words_example(text, predictor.word_split)
    if not example.tokens:
        raise ConfigError("the text has no words to explain.")
    prediction, probs = _tag_probs(predictor, [example])
    prediction, probs = prediction[0], probs[0]
    tags = prediction["tags"]
    entities = prediction.get("entities", [])
    if target is not None:
        chosen = [e for e in entities if e["label"] == target]
    else:
        chosen = list(entities)
    unknown = predictor.tokenizer.unk_token or predictor.tokenizer.pad_token or "_"
    variants = []
    for i in range(len(example.tokens)):
        tokens = list(example.tokens)
        tokens[i] = unknown
        variants.append(_with_tokens(example, tokens))
    _, variant_probs = _tag_probs(predictor, variants) if variants else ([], [])
    spans = [(example.offsets[i][0], example.offsets[i][1]) for i in range(len(example.tokens))]
    explained = []
    for entity in chosen:
        words = [i for i, (s, e) in enumerate(spans) if s >= entity["start"] and e <= entity["end"]]
        columns = [predictor.labels.index(tags[i]) for i in words]
        base = _mean_prob(probs, words, columns)
        scores = [base - _mean_prob(vp, words, columns) for vp in variant_probs]
        explained.append({**entity, "explanation": {
            "method": "occlusion", "target": entity["label"], "target_score": round(base, 6),
            "entity": {"start": entity["start"], "end": entity["end"], "text": entity["text"]},
            "words": [{"word": text[s:e], "start": s, "end": e, "score": round(float(v), 6)}
                      for (s, e), v in zip(spans, scores)]}})
    seconds = round(time.perf_counter() - started, 4)
    for e in explained:
        e["explanation"]["seconds"] = seconds
    record = {"text": text, **prediction, "entities": explained or entities}
    if target is not None and not explained:
        record["explanation"] = {"method": "occlusion", "target": target, "words": [], "seconds": seconds,
                                 "note": f"no {target} entity was found in this text"}
    elif explained:
        record["explanation"] = max(explained, key=lambda e: e["score"])["explanation"]
    else:
        record["explanation"] = {"method": "occlusion", "target": None, "words": [], "seconds": seconds,
                                 "note": "no entity was found in this text"}
    return record


def _with_tokens(example, tokens: list[str]):
    from ..data.tokens import join_tokens
    from ..data.types import Example

    joined, offsets = join_tokens(tokens)
    return Example(text=joined, tokens=tokens, offsets=offsets)


def _tag_probs(predictor, examples: list):
    predictions, word_probs = predictor.task.predict_examples(predictor.model, predictor.tokenizer, examples,
                                                              predictor.labels, predictor.max_length)
    probs = [[None if p is None else np.asarray(p, dtype=np.float64) for p in row] for row in word_probs]
    return predictions, probs


def _mean_prob(probs: list, words: list[int], columns: list[int]) -> float:
    values = [probs[w][c] for w, c in zip(words, columns) if w < len(probs) and probs[w] is not None]
    return float(np.mean(values)) if values else 0.0
