"""The models: base-model resolution, the encoder with its task head, running a model over
many texts, and the runtimes that stand in for a torch model (ONNX, a generative LM).

Modules:
    base_models    resolve ``default`` / a folder / a hub id to a local folder
    heads          DomainModel, TokenModel, EmbeddingModel (encoder + pooling + head)
    predict        predict_logits, embed_texts: length-sorted batches, input order kept
    onnx_runtime   OnnxModel: an exported graph behind the torch model's interface
    lm             a causal LM loader and the label scorer of zero-shot's LM backend
"""

from .base_models import DEFAULT_MODEL_NAME, ResolvedModel, card_facts, resolve_model, weights_sha256
from .heads import DomainModel, EmbeddingModel, TokenModel, build_encoder, build_task_model, freeze_lower_layers
from .predict import autocast, embed_texts, predict_logits, top_k

__all__ = ["DEFAULT_MODEL_NAME", "ResolvedModel", "resolve_model", "weights_sha256", "card_facts", "DomainModel",
           "EmbeddingModel", "TokenModel", "build_encoder", "build_task_model", "freeze_lower_layers", "autocast", "embed_texts",
           "predict_logits", "top_k"]
