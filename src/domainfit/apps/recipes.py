"""What every app's recipe shares: turning pydantic's validation errors into one message in
the recipe's terms (the key, what is wrong, and the keys allowed where an unknown one is)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.errors import ConfigError

__all__ = ["recipe_error"]


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
