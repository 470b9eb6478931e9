"""The customer-service recipe: which files make the assistant, and how.

A YAML file (paths are relative to it; ``${NAME}`` and ``${NAME:-default}`` are read from
the environment) or the same given on the command line::

    intents:                       # labelled historical queries → intents (required)
      data: history.csv
      text_column: text
      label_column: label
      oos_label: oos               # rows with this label are out-of-scope examples (optional)
      oos_data: off_topic.csv      # more out-of-scope texts, e.g. other products' messages (optional)
      method: full                 # any domainfit method; auto picks by data size
      model: default               # base model: packaged default, local folder or hub id
      settings: {training.epochs: 3}   # any `domainfit train` setting
    answers: answers.csv           # intent → answer template (optional)
    client_slots: [card_type]      # slots a chat request's context may set (default: none; the
                                   # others come only from the answers file's defaults)
    faq: {data: faq.csv, question_column: question, answer_column: answer}   # optional
    docs: help-centre/             # Markdown/text documents (optional)
    retrieval: {model: default, min_score: 0.5, rerank: null, candidates: 10}
    out_of_scope:                  # one rule: max_accuracy_loss (default 0.01), fallback_rate or target_precision
      {method: max-softmax, max_accuracy_loss: 0.01, exposure: class}
    generation: {enabled: false, model: smollm2, max_new_tokens: 96}
    fallback: "I'm not sure — connecting you to an agent."
    seed: 42
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...core.errors import ConfigError
from ...ood import DEFAULT_ACCURACY_LOSS, METHODS
from ..recipes import read_recipe, recipe_error

__all__ = ["Recipe", "load_recipe", "DEFAULT_FALLBACK"]

DEFAULT_FALLBACK = "I'm not sure — connecting you to an agent."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Intents(_Strict):
    data: str = Field(..., description="Labelled historical queries (CSV/TSV/JSONL/Parquet).")
    text_column: str = "text"
    label_column: str = "label"
    oos_label: Optional[str] = Field("oos", description="Rows with this label are out-of-scope examples.")
    oos_data: Optional[str] = Field(None, description="A file of out-of-scope texts (text column), e.g. messages "
                                                     "about other products or off-topic chat.")
    method: str = "full"
    model: str = "default"
    validation_share: float = Field(0.1, gt=0, lt=0.5, description="Held out to calibrate the thresholds.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Any `domainfit train` setting.")


class Faq(_Strict):
    data: str
    question_column: str = "question"
    answer_column: str = "answer"
    id_column: Optional[str] = "id"


class Retrieval(_Strict):
    model: str = Field("default", description="A retrieval artifact, or a base model used as it comes.")
    min_score: float = Field(0.5, ge=-1, le=1, description="Cosine similarity a passage needs to be answered.")
    rerank: Optional[str] = Field(None, description="A pair model folder that reorders the candidates.")
    candidates: int = Field(10, ge=1, le=100)
    max_words: int = Field(120, ge=10, le=1000, description="Longest document passage, in words.")


class OutOfScope(_Strict):
    method: str = "max-softmax"
    max_accuracy_loss: Optional[float] = Field(
        None, ge=0, lt=1, description="In-scope accuracy the fallback may cost on validation (default 0.01 when "
                                      "no other rule is set).")
    fallback_rate: Optional[float] = Field(None, ge=0, lt=1, description="Share of validation texts handed off.")
    target_precision: Optional[float] = Field(None, gt=0, le=1, description="Answered texts right this often (the "
                                              "loosest threshold; catches few out-of-scope texts with an accurate "
                                              "classifier).")
    exposure: Literal["class", "outlier"] = Field(
        "class", description="How out-of-scope examples train the intent model: 'class' (one more intent; its "
                             "validation calibration held on test, benchmarks/oos_exposure.py) or 'outlier' (an "
                             "even spread over the intents, so the detector is unsure on texts like them).")

    @model_validator(mode="after")
    def _one_rule(self) -> OutOfScope:
        given = [n for n in ("max_accuracy_loss", "fallback_rate", "target_precision") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"set one calibration rule, not {' and '.join(given)}")
        return self

    def rule(self) -> dict:
        """The calibration rule as ``ood.calibrate`` keywords (the default: 1 point of accuracy)."""
        given = {n: getattr(self, n) for n in ("max_accuracy_loss", "fallback_rate", "target_precision")
                 if getattr(self, n) is not None}
        return given or {"max_accuracy_loss": DEFAULT_ACCURACY_LOSS}

    @field_validator("method")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in METHODS:
            raise ValueError(f"must be one of {', '.join(METHODS)}")
        return v


class Generation(_Strict):
    enabled: bool = False
    model: str = "smollm2"
    max_new_tokens: int = Field(96, ge=8, le=512)
    passages: int = Field(3, ge=1, le=10)


class Recipe(_Strict):
    intents: Intents
    answers: Optional[str] = None
    faq: Optional[Faq] = None
    docs: Optional[str] = None
    retrieval: Retrieval = Field(default_factory=Retrieval)
    out_of_scope: OutOfScope = Field(default_factory=OutOfScope)
    generation: Generation = Field(default_factory=Generation)
    fallback: str = Field(DEFAULT_FALLBACK, min_length=1, max_length=1000)
    seed: int = 42
    client_slots: list[str] = Field(default_factory=list, max_length=50)

    def resolved(self, base: Path) -> Recipe:
        """Relative paths made absolute against ``base`` (the recipe's folder)."""
        def fix(p: str | None) -> str | None:
            if p is None or p in ("default",):
                return p
            q = Path(p).expanduser()
            return str(q if q.is_absolute() else (base / q).resolve())

        r = self.model_copy(deep=True)
        r.intents.data = fix(r.intents.data)
        r.intents.oos_data = fix(r.intents.oos_data)
        r.answers, r.docs = fix(r.answers), fix(r.docs)
        if r.faq is not None:
            r.faq.data = fix(r.faq.data)
        if r.retrieval.rerank is not None:
            r.retrieval.rerank = fix(r.retrieval.rerank)
        for part in (r.intents, r.retrieval):
            if part.model != "default" and (base / part.model).exists():
                part.model = fix(part.model)
        return r


def _explain(exc: ValidationError, header: str) -> ConfigError:
    return recipe_error(exc, header, Recipe)


def load_recipe(path: str | Path | None = None, **given: Any) -> Recipe:
    """Read a recipe YAML (relative paths against its folder; ``${NAME:-default}`` read from
    the environment), or build one from ``given`` (paths relative to the working folder)."""
    return read_recipe(Recipe, path, given, "customer-service", "intents:, answers:, faq:")


def recipe_from_options(recipe: str | Path | None = None, *, intents: str | None = None, answers: str | None = None,
                        faq: str | None = None, docs: str | None = None, oos_label: str = "oos",
                        method: str | None = None, model: str | None = None,
                        overrides: list[str] | None = None, client_slots: list[str] | None = None,
                        oos_data: str | None = None, exposure: str | None = None,
                        max_accuracy_loss: float | None = None, fallback_rate: float | None = None) -> Recipe:
    """A recipe from a YAML file, or from the parts given one by one (not both), with the
    intent model's method, base model and ``key=value`` training settings, the out-of-scope
    texts, their exposure and the calibration rule on top (as the command line passes them).

    Raises:
        ConfigError: both or neither given, or a bad setting.
    """
    from ...core.config import parse_overrides

    if recipe is not None and any(v is not None for v in (intents, answers, faq, docs)):
        raise ConfigError("give a recipe or --intents/--answers/--faq/--docs, not both.")
    if recipe is None and intents is None:
        raise ConfigError("give a recipe file, or at least --intents FILE.")
    if recipe is not None:
        r = load_recipe(recipe)
    else:
        r = load_recipe(intents={"data": intents, "oos_label": oos_label}, answers=answers,
                        faq={"data": faq} if faq else None, docs=docs)
    if method:
        r.intents.method = method
    if model:
        r.intents.model = model
    r.intents.settings.update(parse_overrides(overrides or []))
    if client_slots:
        r.client_slots = sorted(set(r.client_slots) | set(client_slots))
    if oos_data is not None:
        r.intents.oos_data = str(Path(oos_data).expanduser().resolve())
    changes = {k: v for k, v in (("exposure", exposure), ("max_accuracy_loss", max_accuracy_loss),
                                 ("fallback_rate", fallback_rate)) if v is not None}
    if changes:
        rules = {"max_accuracy_loss", "fallback_rate"} & set(changes)
        current = r.out_of_scope.model_dump()
        if rules:  # a rule given on the command line replaces the recipe's
            current.update(max_accuracy_loss=None, fallback_rate=None, target_precision=None)
        try:
            r.out_of_scope = OutOfScope(**{**current, **changes})
        except ValidationError as exc:
            raise _explain(exc, "The out-of-scope options are not valid") from None
    return r
