"""Personalized recommendation from interactions and item text (``domainfit app recommend``).

A hybrid of collaborative components (EASE on likes and on everything seen, popularity,
optionally item-kNN and ALS) and a text tower trained on the interactions, blended with
weights per item-history bucket chosen on a validation split, so that items with history are
ranked mostly by collaboration and brand-new ones by their text. Built from domainfit's
public parts: the base-model resolver, the encoder, the serving package.

    >>> from domainfit.apps.recommend import load_recommender          # doctest: +SKIP
    >>> rec = load_recommender("movies-rec")                            # doctest: +SKIP
    >>> rec.recommend(rec.user_histories(["1"]), k=10)                  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["train_bundle", "load_recommender", "read_bundle", "add_items", "Recipe", "load_recipe"]

_WHERE = {"train_bundle": "bundle", "load_recommender": "bundle", "read_bundle": "bundle", "add_items": "bundle",
          "Recipe": "recipe", "load_recipe": "recipe"}


def __getattr__(name: str):
    """Imported on first use, so that the command line (which lists this app's commands) does
    not load the recommender's numerical stack."""
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)
