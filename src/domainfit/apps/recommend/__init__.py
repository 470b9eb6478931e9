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

from .bundle import add_items, load_recommender, read_bundle, train_bundle
from .recipe import Recipe, load_recipe

__all__ = ["train_bundle", "load_recommender", "read_bundle", "add_items", "Recipe", "load_recipe"]
