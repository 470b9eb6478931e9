"""The recommendation recipe: which files make the bundle, and how.

A YAML file (paths are relative to it; ``${NAME}`` and ``${NAME:-default}`` are read from the
environment) or the same given on the command line::

    interactions: ratings.csv          # user,item[,rating][,time] (required)
    items: catalogue.csv               # item,text[,time][,title] (required)
    columns:                           # the files' own column names, where they differ
      interactions: {user: user_id, item: item_id, time: timestamp}
      items: {item: item_id, time: year}
    positive_rating: 3.5               # a rating at or above it is a like (none: every row is a like)
    on_unknown_items: error            # or skip: leave out interactions naming items the catalogue lacks
    model: default                     # the text encoder: packaged default, local folder or hub id
    components:                        # name: settings (kind: which scorer, default the name)
      ease: {l2: 300, decay: 0.85}
      ease_watch: {kind: ease, source: all, l2: 300, decay: 0.9}
      sequence: {window: 10, decay: 0.5}
      tower: {epochs: 5}
      content: {decay: 0.5}
      popularity: {}
    hybrid: {cold_weight: 1.0, holdout: 1, edges: [1, 5, 20], rounds: 2, validation_users: 5000}
    serving: {exact_limit: 50000, probe: 64}
    seed: 0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...core.errors import ConfigError
from ..recipes import read_recipe

__all__ = ["Recipe", "load_recipe", "recipe_from_options", "DEFAULT_COMPONENTS"]

DEFAULT_COMPONENTS: dict[str, dict[str, Any]] = {
    "ease": {"l2": 300.0, "decay": 0.85},
    "ease_watch": {"kind": "ease", "source": "all", "l2": 300.0, "decay": 0.9},
    "sequence": {"window": 10, "decay": 0.5},
    "tower": {"epochs": 5},
    "content": {"decay": 0.5},
    "popularity": {},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Columns(_Strict):
    interactions: dict[str, str] = Field(default_factory=dict, description="user/item/rating/time → the file's name.")
    items: dict[str, str] = Field(default_factory=dict, description="item/text/time/title → the file's name.")

    @field_validator("interactions")
    @classmethod
    def _known_interactions(cls, value):
        from .data import INTERACTION_COLUMNS

        unknown = sorted(set(value) - set(INTERACTION_COLUMNS))
        if unknown:
            raise ValueError(f"unknown column role(s) {', '.join(unknown)}; the roles are "
                             f"{', '.join(INTERACTION_COLUMNS)}")
        return value

    @field_validator("items")
    @classmethod
    def _known_items(cls, value):
        from .data import ITEM_COLUMNS

        unknown = sorted(set(value) - set(ITEM_COLUMNS))
        if unknown:
            raise ValueError(f"unknown column role(s) {', '.join(unknown)}; the roles are {', '.join(ITEM_COLUMNS)}")
        return value


class HybridSettings(_Strict):
    cold_weight: float = Field(1.0, ge=0, description="Weight of cold-item recall in the validation objective.")
    holdout: int = Field(1, ge=1, le=10, description="Each user's last likes held out to choose the weights "
                         "(1: the question a leave-last-out test asks, what comes next; more: more "
                         "targets, from further back, with less history to fit on).")
    cold_threshold: int = Field(5, ge=1, description="Items with fewer likes in training are cold.")
    niche_threshold: int = Field(10, ge=1, description="A user's niche taste: the share of their likes that went to "
                                 "items fewer users than this liked.")
    edges: list[int] = Field(default_factory=lambda: [1, 5, 20], description="History buckets' lower edges.")
    rounds: int = Field(2, ge=0, le=10)
    k: int = Field(10, ge=1, le=100)
    validation_users: int = Field(5000, ge=10, description="At most this many users judge the weights.")
    estimate_folds: int = Field(2, ge=0, le=10, description="Folds of the validation users for the held-out "
                                "estimate (each scored with weights chosen on the others; 0: no estimate).")

    @field_validator("edges")
    @classmethod
    def _increasing(cls, value):
        if not value or any(b <= a for a, b in zip(value, value[1:])) or value[0] < 1:
            raise ValueError("edges are increasing whole numbers from at least 1")
        return value


class Serving(_Strict):
    exact_limit: int = Field(50_000, ge=1, description="Beyond this many items, an approximate index serves.")
    probe: int = Field(64, ge=1, description="Cells the approximate index searches.")
    lists: Optional[int] = Field(None, ge=1, description="Cells of the approximate index (default 4·√n).")


class Recipe(_Strict):
    interactions: str
    items: str
    columns: Columns = Field(default_factory=Columns)
    positive_rating: Optional[float] = None
    on_unknown_items: Literal["error", "skip"] = "error"
    model: str = "default"
    components: dict[str, dict[str, Any]] = Field(default_factory=lambda: {k: dict(v) for k, v in
                                                                          DEFAULT_COMPONENTS.items()})
    hybrid: HybridSettings = Field(default_factory=HybridSettings)
    serving: Serving = Field(default_factory=Serving)
    seed: int = 0

    @field_validator("components")
    @classmethod
    def _components(cls, value):
        from .components import COMPONENTS

        if not value:
            raise ValueError("at least one component")
        kinds = {*COMPONENTS, "tower"}
        for name, settings in value.items():
            kind = (settings or {}).get("kind", name)
            if kind not in kinds:
                raise ValueError(f"{name}: unknown kind '{kind}'; the kinds are {', '.join(sorted(kinds))}")
        return value

    def resolved(self, base: Path) -> "Recipe":
        """Relative paths made absolute against ``base`` (the recipe's folder)."""
        def fix(p: str) -> str:
            q = Path(p).expanduser()
            return str(q if q.is_absolute() else (base / q).resolve())

        r = self.model_copy(deep=True)
        r.interactions, r.items = fix(r.interactions), fix(r.items)
        if r.model != "default" and (base / r.model).exists():
            r.model = fix(r.model)
        return r


def load_recipe(path: str | Path | None = None, **given: Any) -> Recipe:
    """Read a recipe YAML, or build one from ``given`` (paths relative to the working folder)."""
    return read_recipe(Recipe, path, given, "recommendation", "interactions:, items:")


def recipe_from_options(recipe: str | Path | None = None, *, interactions: str | None = None,
                        items: str | None = None, positive_rating: float | None = None,
                        model: str | None = None, skip_unknown_items: bool = False,
                        epochs: int | None = None) -> Recipe:
    """A recipe from a YAML file, or from ``--interactions`` and ``--items`` (not both)."""
    if recipe is not None and (interactions is not None or items is not None):
        raise ConfigError("give a recipe or --interactions/--items, not both.")
    if recipe is None and (interactions is None or items is None):
        raise ConfigError("give a recipe file, or both --interactions FILE and --items FILE.")
    r = load_recipe(recipe) if recipe is not None else load_recipe(interactions=interactions, items=items)
    if positive_rating is not None:
        r.positive_rating = positive_rating
    if model:
        r.model = model
    if skip_unknown_items:
        r.on_unknown_items = "skip"
    if epochs is not None:
        for name, settings in r.components.items():
            if settings.get("kind", name) == "tower":
                settings["epochs"] = epochs
    return r
