"""The monitoring recipe: which files make the bundle, and how.

A YAML file (paths are relative to it; ``${NAME}`` and ``${NAME:-default}`` are read from the
environment) or the same given on the command line::

    sentiment:                     # labelled sentences → positive | negative | neutral (required)
      data: phrasebank/train.csv
      text_column: text
      label_column: label
      labels: {positive: positive, negative: negative, neutral: neutral}   # the data's names for the three
      method: full                 # any domainfit method
      model: default               # base model: packaged default, local folder or hub id
      validation_share: 0.1        # held out to calibrate the probabilities
      on_bad_rows: error           # or skip: leave out rows with problems (listed)
      settings: {training.epochs: 4}
    entities: companies.csv        # id,name,aliases,ticker (required)
    topics:                        # an optional topic classifier (text,label)
      data: topics.csv
    rules: rules.yaml              # alert rules and sinks (default: the built-in surge rules, log sink)
    linker: {fuzzy: 90}            # rapidfuzz score a misspelt name needs (100: exact names only)
    dedup: {window: 2d, threshold: 0.7}   # reprints: estimated Jaccard of character shingles, within the window
    export: {int8: true, min_agreement: 0.97}   # an int8 ONNX copy scores the stream
    seed: 42
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...core.errors import ConfigError
from ..recipes import read_recipe
from .aggregates import parse_duration

__all__ = ["Recipe", "load_recipe", "recipe_from_options", "SENTIMENTS"]

SENTIMENTS = ("positive", "negative", "neutral")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sentiment(_Strict):
    data: str = Field(..., description="Labelled sentences (CSV/TSV/JSONL/Parquet).")
    text_column: str = "text"
    label_column: str = "label"
    labels: dict[str, str] = Field(default_factory=lambda: {s: s for s in SENTIMENTS},
                                   description="positive/negative/neutral → the data's label for it.")
    method: str = "full"
    model: str = "default"
    validation_share: float = Field(0.1, gt=0, lt=0.5)
    on_bad_rows: Literal["error", "skip"] = Field("error", description="skip: leave out rows with problems (e.g. "
                                                  "one sentence labelled two ways), listed in the build's output.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Any `domainfit train` setting.")

    @model_validator(mode="after")
    def _three(self) -> "Sentiment":
        unknown = sorted(set(self.labels) - set(SENTIMENTS))
        if unknown or not {"positive", "negative"} <= set(self.labels):
            raise ValueError("labels maps positive, negative (and optionally neutral) to the data's labels"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
        if len(set(self.labels.values())) != len(self.labels):
            raise ValueError("labels: two sentiments map to the same label of the data")
        return self


class Topics(_Strict):
    data: str
    text_column: str = "text"
    label_column: str = "label"
    method: str = "full"
    model: str = "default"
    settings: dict[str, Any] = Field(default_factory=dict)


class Linker(_Strict):
    fuzzy: int = Field(90, ge=50, le=101, description="rapidfuzz score a misspelt name needs; 101 turns it off.")


class Dedup(_Strict):
    window: str = "2d"
    threshold: float = Field(0.7, gt=0, le=1)

    @model_validator(mode="after")
    def _window(self) -> "Dedup":
        parse_duration(self.window, "dedup.window")
        return self


class Export(_Strict):
    int8: bool = True
    min_agreement: float = Field(0.97, gt=0, le=1)


class Recipe(_Strict):
    sentiment: Sentiment
    entities: str
    topics: Optional[Topics] = None
    rules: Optional[str] = None
    linker: Linker = Field(default_factory=Linker)
    dedup: Dedup = Field(default_factory=Dedup)
    export: Export = Field(default_factory=Export)
    seed: int = 42

    def resolved(self, base: Path) -> "Recipe":
        """Relative paths made absolute against ``base`` (the recipe's folder)."""
        def fix(p: str | None) -> str | None:
            if p is None:
                return p
            q = Path(p).expanduser()
            return str(q if q.is_absolute() else (base / q).resolve())

        r = self.model_copy(deep=True)
        r.sentiment.data, r.entities, r.rules = fix(r.sentiment.data), fix(r.entities), fix(r.rules)
        if r.topics is not None:
            r.topics.data = fix(r.topics.data)
        for part in (r.sentiment, r.topics):
            if part is not None and part.model != "default" and (base / part.model).exists():
                part.model = fix(part.model)
        return r


def load_recipe(path: str | Path | None = None, **given: Any) -> Recipe:
    """Read a recipe YAML, or build one from ``given`` (paths relative to the working folder)."""
    return read_recipe(Recipe, path, given, "monitoring", "sentiment:, entities:")


def recipe_from_options(recipe: str | Path | None = None, *, sentiment_data: str | None = None,
                        entities: str | None = None, topics_data: str | None = None, rules: str | None = None,
                        method: str | None = None, model: str | None = None,
                        overrides: list[str] | None = None, int8: bool | None = None) -> Recipe:
    """A recipe from a YAML file, or from ``--sentiment-data`` and ``--entities`` (not both),
    with the sentiment model's method, base model and ``key=value`` settings on top."""
    from ...core.config import parse_overrides

    if recipe is not None and (sentiment_data is not None or entities is not None):
        raise ConfigError("give a recipe or --sentiment-data/--entities, not both.")
    if recipe is None and (sentiment_data is None or entities is None):
        raise ConfigError("give a recipe file, or both --sentiment-data FILE and --entities FILE.")
    if recipe is not None:
        r = load_recipe(recipe)
    else:
        r = load_recipe(sentiment={"data": sentiment_data}, entities=entities,
                        topics={"data": topics_data} if topics_data else None)
    if recipe is not None and topics_data is not None:
        r.topics = Topics(data=str(Path(topics_data).expanduser().resolve()))
    if rules is not None:
        r.rules = str(Path(rules).expanduser().resolve())
    if method:
        r.sentiment.method = method
    if model:
        r.sentiment.model = model
    if int8 is not None:
        r.export.int8 = int8
    r.sentiment.settings.update(parse_overrides(overrides or []))
    return r
