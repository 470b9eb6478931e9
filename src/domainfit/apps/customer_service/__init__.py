"""Intelligent customer service: intents, FAQ/document answers, out-of-scope fallback with
hand-off, conversations, a chat API and a web chat page (docs/customer-service.md).

    >>> from domainfit.apps.customer_service import load_recipe, train_bundle, Assistant  # doctest: +SKIP
    >>> train_bundle(load_recipe("recipe.yaml"), "bundle")                                 # doctest: +SKIP
    >>> Assistant("bundle").answer("my card has not arrived")["route"]                    # doctest: +SKIP
    'intent'
"""

from __future__ import annotations

__all__ = ["load_recipe", "Recipe", "train_bundle", "Assistant", "evaluate_bundle", "create_chat_app",
           "ConversationStore", "read_answers", "render"]


def __getattr__(name: str):
    if name in ("load_recipe", "Recipe"):
        from . import recipe

        return getattr(recipe, name)
    if name == "train_bundle":
        from .bundle import train_bundle

        return train_bundle
    if name == "Assistant":
        from .assistant import Assistant

        return Assistant
    if name == "evaluate_bundle":
        from .evaluate import evaluate_bundle

        return evaluate_bundle
    if name == "create_chat_app":
        from .server import create_chat_app

        return create_chat_app
    if name == "ConversationStore":
        from .conversations import ConversationStore

        return ConversationStore
    if name in ("read_answers", "render"):
        from . import answers

        return getattr(answers, name)
    raise AttributeError(name)
