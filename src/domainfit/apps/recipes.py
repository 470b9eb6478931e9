"""What every app's recipe shares: reading it (a YAML file, or the same given as options), and
turning pydantic's validation errors into one message in the recipe's terms (the key, what is
wrong, and the keys allowed where an unknown one is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.errors import ConfigError

__all__ = ["recipe_error", "read_recipe"]


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """The keys allowed where an unknown key was found."""
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            break
        inner = field.annotation
        for arg in getattr(inner, "__args__", ()):  # Optional[Faq] → Faq
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                inner = arg
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            break
        model = inner
    return list(getattr(model, "model_fields", {}))


def recipe_error(exc: ValidationError, header: str, model: type[BaseModel]) -> ConfigError:
    """A :class:`ConfigError` listing the first ten problems of ``exc`` (raised validating
    ``model``), each as ``key.path: message``."""
    lines = []
    for e in exc.errors()[:10]:
        where = ".".join(str(p) for p in e["loc"]) or "recipe"
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key; the keys here are {', '.join(_fields_at(model, e['loc'][:-1]))}")
        else:
            lines.append(f"{where}: {e['msg']}")
    return ConfigError(header + ":\n  " + "\n  ".join(lines))


def read_recipe(model: Any, path: str | Path | None, given: dict, what: str, keys: str):
    """An app's recipe (a pydantic ``model`` with a ``resolved(base)`` method): read from the
    YAML file ``path`` (relative paths against its folder; ``${NAME:-default}`` read from the
    environment), or built from ``given`` (paths relative to the working folder).

    ``what`` names the app in messages ("monitoring"); ``keys`` lists its main keys
    ("sentiment:, entities:").
    """
    from ..core.config import read_yaml

    if path is None:
        try:
            return model(**given).resolved(Path.cwd())
        except ValidationError as exc:
            raise recipe_error(exc, f"The options do not make a valid {what} recipe", model) from None
    path = Path(path)
    data = read_yaml(path, "recipe")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping ({keys}, ...).")
    try:
        return model(**data).resolved(path.parent.resolve())
    except ValidationError as exc:
        raise recipe_error(exc, f"{path} is not a valid {what} recipe", model) from None
