"""The sparse companion of a classifier: character and word n-gram TF-IDF features and a
multinomial logistic regression (scikit-learn), blended with the encoder's probabilities.

It sees what a small encoder misses (rare words, product codes, scripts its vocabulary
lacks) and costs a few seconds to fit. It is stored as ``companion.json`` (settings and
vocabularies) and ``companion.safetensors`` (idf weights, coefficients): no pickle.

Example:
    >>> companion = NgramCompanion.fit(["good food", "cold and late"], [0, 1], 2)  # doctest: +SKIP
    >>> companion.proba(["late again"]).shape                                       # doctest: +SKIP
    (1, 2)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

__all__ = ["COMPANION_FILES", "C_GRID", "NgramCompanion", "Blended", "blend_weight"]

COMPANION_FILES = ("companion.json", "companion.safetensors")
# Character n-grams inside word boundaries read any script (Chinese has no spaces); word
# uni- and bigrams add whole-word evidence. Sizes keep a 77-class model near 20 MB.
_VECTORIZERS = {
    "char": {"analyzer": "char_wb", "ngram_range": [1, 4], "min_df": 2, "max_features": 50_000,
             "sublinear_tf": True, "lowercase": True},
    "word": {"analyzer": "word", "ngram_range": [1, 2], "min_df": 2, "max_features": 20_000,
             "sublinear_tf": True, "lowercase": True, "token_pattern": r"(?u)\b\w+\b"},
}
C_GRID = (2.0, 10.0)  # inverse regularisation strengths tried; validation picks one


def _vectorizer(params: dict, vocabulary: dict | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    settings = {**params, "ngram_range": tuple(params["ngram_range"]), "dtype": np.float32}
    return TfidfVectorizer(**settings, vocabulary=vocabulary)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    return scores / scores.sum(axis=1, keepdims=True)


class NgramCompanion:
    """A fitted n-gram model: :meth:`proba` gives ``(n, classes)`` probabilities."""

    def __init__(self, vectorizers: dict, coef: np.ndarray, intercept: np.ndarray, c: float):
        self.vectorizers, self.coef, self.intercept, self.c = vectorizers, coef, intercept, c

    @classmethod
    def fit(cls, texts: list[str], targets: list[int], n_classes: int, *, c: float = 10.0,
            seed: int = 42) -> "NgramCompanion":
        """Fit on ``texts`` with integer ``targets`` in ``range(n_classes)``."""
        from scipy.sparse import hstack
        from sklearn.linear_model import LogisticRegression

        vectorizers, blocks = {}, []
        for name, params in _VECTORIZERS.items():
            vec = _vectorizer({**params, "min_df": params["min_df"] if len(texts) >= 200 else 1})
            try:
                blocks.append(vec.fit_transform(texts))
            except ValueError:  # no n-gram left (e.g. no word of two letters): this block is left out
                continue
            vectorizers[name] = vec
        model = LogisticRegression(C=c, max_iter=1000, random_state=seed)
        model.fit(hstack(blocks).tocsr(), targets)
        coef = np.zeros((n_classes, model.coef_.shape[1]), dtype=np.float32)
        intercept = np.full(n_classes, -30.0, dtype=np.float32)  # a class absent from training: never
        seen = [int(k) for k in model.classes_]
        if len(seen) == 2:  # scikit-learn keeps one row for two classes: the second class's logit
            coef[seen[1]], intercept[seen[1]] = model.coef_[0], model.intercept_[0]
            coef[seen[0]], intercept[seen[0]] = 0.0, 0.0
        else:
            coef[seen], intercept[seen] = model.coef_, model.intercept_
        return cls(vectorizers, coef, intercept, c)

    def features(self, texts: list[str]):
        from scipy.sparse import hstack

        return hstack([vec.transform(texts) for vec in self.vectorizers.values()]).tocsr()

    def proba(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.intercept)), dtype=np.float32)
        scores = np.asarray(self.features(list(texts)) @ self.coef.T, dtype=np.float32) + self.intercept
        return _softmax(scores)

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[1])

    def save(self, folder: str | Path) -> None:
        """Write :data:`COMPANION_FILES` into ``folder``."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        described, tensors = {}, {"coef": self.coef, "intercept": self.intercept}
        for name, vec in self.vectorizers.items():
            terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
            params = vec.get_params()  # as fitted (a small training set keeps n-grams seen once)
            used = {k: list(params[k]) if k == "ngram_range" else params[k] for k in _VECTORIZERS[name]}
            described[name] = {"params": used, "terms": terms}
            tensors[f"{name}_idf"] = vec.idf_.astype(np.float32)
        body = {"kind": "ngram", "version": 1, "c": self.c, "vectorizers": described}
        (folder / COMPANION_FILES[0]).write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(folder / COMPANION_FILES[1]))

    @classmethod
    def load(cls, folder: str | Path) -> "NgramCompanion":
        """Read what :meth:`save` wrote (``ValueError`` when it does not fit together)."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        body = json.loads((folder / COMPANION_FILES[0]).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / COMPANION_FILES[1]))
        if body.get("kind") != "ngram":
            raise ValueError(f"unknown companion kind {body.get('kind')!r}")
        vectorizers, width = {}, 0
        for name, described in body["vectorizers"].items():
            vec = _vectorizer(described["params"], {t: i for i, t in enumerate(described["terms"])})
            vec.idf_ = tensors[f"{name}_idf"]
            vectorizers[name] = vec
            width += len(described["terms"])
        coef, intercept = tensors["coef"], tensors["intercept"]
        if coef.shape != (len(intercept), width):
            raise ValueError(f"coefficients of shape {coef.shape} do not fit {width} features")
        return cls(vectorizers, coef, intercept, float(body["c"]))


def blend_weight(encoder: np.ndarray, companion: np.ndarray, targets: np.ndarray) -> tuple[float, float, float]:
    """The encoder's weight in ``w * encoder + (1 - w) * companion`` that scores best on
    labelled validation probabilities (accuracy, ties broken by log loss, then by the larger
    encoder weight); returns ``(weight, accuracy, log_loss)``."""
    best = None
    rows = np.arange(len(targets))
    for w in np.linspace(1.0, 0.0, 21):
        mixed = w * encoder + (1 - w) * companion
        accuracy = float((mixed.argmax(1) == targets).mean())
        loss = float(-np.log(np.clip(mixed[rows, targets], 1e-9, 1)).mean())
        key = (accuracy, -loss)
        if best is None or key > best[0]:
            best = (key, round(float(w), 2), accuracy, loss)
    return best[1], best[2], best[3]


class Blended(torch.nn.Module):
    """A classifier whose probabilities are ``weight * model + (1 - weight) * companion``.

    Reads raw text (``text_logits``, as tasks expect of text-reading models) and returns the
    log of the blended probabilities, so the task's softmax gives the blend back. Anything
    else (``encoder``, ``head_logits``, ``forward``) is the wrapped model's.
    """

    def __init__(self, model: torch.nn.Module, companion: NgramCompanion, weight: float, tokenizer,
                 max_length: int, batch_size: int = 64):
        super().__init__()
        self.inner = model
        self.companion, self.weight = companion, float(weight)
        self.tokenizer, self.max_length, self.batch_size = tokenizer, max_length, batch_size

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def text_logits(self, texts: list[str], pairs: list[str] | None = None) -> torch.Tensor:
        from ..data.batching import encode_texts
        from .predict import predict_logits

        logits = predict_logits(self.inner, encode_texts(self.tokenizer, list(texts), pairs, self.max_length),
                                self.tokenizer.pad_token_id, self.batch_size)
        mixed = self.weight * logits.float().softmax(-1).numpy() + (1 - self.weight) * self.companion.proba(texts)
        return torch.from_numpy(np.log(np.clip(mixed, 1e-12, 1.0)).astype(np.float32))
