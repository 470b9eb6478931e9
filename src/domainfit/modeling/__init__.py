"""The models: base-model resolution, the encoder with its task head, running a model over
many texts, and the runtimes that stand in for a torch model (ONNX, a generative LM).

Modules:
    base_models    resolve ``default`` / a folder / a hub id to a local folder
    heads          DomainModel, TokenModel, EmbeddingModel (encoder + pooling + head)
    predict        predict_logits, embed_texts: length-sorted batches, input order kept
    onnx_runtime   OnnxModel: an exported graph behind the torch model's interface
    lm             a causal LM loader and the label scorer of zero-shot's LM backend
"""

from importlib import import_module

_EXPORTS = {
    "base_models": ("DEFAULT_MODEL_NAME", "ResolvedModel", "card_facts", "resolve_model", "weights_sha256"),
    "heads": ("DomainModel", "EmbeddingModel", "TokenModel", "build_encoder", "build_task_model",
              "freeze_lower_layers", "keep_layers", "spread_layers"),
    "predict": ("autocast", "embed_texts", "predict_logits", "top_k"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_WHERE)


def __getattr__(name: str):
    """Names are imported from their module on first use: running an exported (ONNX) model
    needs ``predict`` but not ``heads``, whose transformers import costs about a second of a
    ``domainfit predict`` run."""
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
