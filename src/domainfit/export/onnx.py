"""The ONNX graph of a model: traced, with onnxruntime's fused attention, optionally int8.

* Parameter-efficient methods are merged into the encoder first (LoRA, AdaLoRA and IA3
  through peft's ``merge_and_unload``; adapters and BitFit are plain modules and biases);
  prompt tuning is traced with its virtual tokens. Prefix tuning passes its prefixes as
  attention caches, which the ONNX tracer cannot follow: it is refused with that reason.
* The graph is traced with ``torch.onnx.export(dynamo=False)`` (dynamic batch and length),
  then each layer's attention is fused into onnxruntime's ``Attention`` op (see
  :func:`fuse_attention`; ``--no-fuse`` keeps standard ONNX ops); int8 uses
  ``onnxruntime.quantization.quantize_dynamic`` (weights int8 per channel, activations
  quantised on the fly).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..core.errors import DomainfitError

__all__ = ["merge_peft", "trace", "fuse_attention", "quantize_int8"]


class _Traced(torch.nn.Module):
    """What the graph computes: logits (per text or per token) or embeddings."""

    def __init__(self, model, embedding: bool):
        super().__init__()
        self.model = model
        self.embedding = embedding

    def forward(self, input_ids, attention_mask, token_type_ids):
        extra = {"token_type_ids": token_type_ids}
        if self.embedding:
            return self.model.embed(input_ids, attention_mask, **extra)
        return self.model(input_ids, attention_mask, **extra)


def merge_peft(model) -> None:
    """Fold a peft-wrapped encoder's adapters into its weights (in place), or refuse prefix tuning."""
    from peft import PeftModel

    encoder = model.encoder
    if not isinstance(encoder, PeftModel):
        return
    peft_type = str(encoder.peft_config["default"].peft_type).split(".")[-1].upper()
    if peft_type == "PREFIX_TUNING":
        raise DomainfitError("a prefix-tuned model cannot be exported to ONNX: its prefixes enter every layer "
                             "as attention caches, which the ONNX tracer does not follow. Export works for "
                             "full, lora, adalora, ia3, prompt, adapter, bitfit, fewshot and zeroshot models.")
    if hasattr(encoder, "merge_and_unload") and peft_type in ("LORA", "ADALORA", "IA3"):
        model.encoder = encoder.merge_and_unload()


def trace(model, tokenizer, path: Path, *, embedding: bool, per_token: bool, opset: int) -> list[str]:
    """Trace ``model`` into an ONNX graph at ``path`` (dynamic batch and sequence axes).

    Returns the tracer's warnings (one line each, without repeats) instead of printing them:
    they say a trace *might* not generalise to other inputs, which the caller's parity
    check on real texts of varied lengths settles (``export_model`` shows them only when it
    fails)."""
    example = tokenizer(["a short text", "and a longer second text here"], padding=True, return_tensors="pt")
    types = example.get("token_type_ids")
    if types is None:
        types = torch.zeros_like(example["input_ids"])
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "token_type_ids": {0: "batch", 1: "sequence"}, "output": {0: "batch"}}
    if per_token:
        axes["output"] = {0: "batch", 1: "sequence"}
    wrapper = _Traced(model, embedding).eval()
    # The eager attention traces into a plainer graph than SDPA's (no mask-expansion branches):
    # measured on Banking77, the int8 graph runs ~1.2x faster (842 vs 672 texts/s on 2 cores).
    config = getattr(getattr(model, "encoder", None), "config", None)
    previous = getattr(config, "_attn_implementation", None)
    if config is not None:
        config._attn_implementation = "eager"
    try:
        return _export(wrapper, example, types, path, axes, opset)
    finally:
        if config is not None:
            config._attn_implementation = previous


def fuse_attention(path: Path, config) -> dict[str, int]:
    """Rewrite a BERT-style encoder's graph with onnxruntime's fused attention, in place.

    Each layer's attention (the Q, K and V products, head reshapes, masked softmax and
    context) becomes one ``Attention`` op with a single packed QKV product, and the mask
    and shape arithmetic around it goes away: all-MiniLM-L6-v2's int8 graph runs 84 nodes
    instead of 243. Measured on Banking77 (2 cores, interleaved runs), a single text takes
    ~19% less time (int8 p50 2.3 against 2.8 ms; fp32 4.3 against 4.8 ms); batch throughput
    (481 against 480 texts/s on one core) and int8 accuracy (0.9302) are unchanged.

    Left out: SkipLayerNormalization (slow on CPU, see ``modeling.onnx_runtime.OnnxModel``), BiasGelu
    (its kernel took 14.5% of an int8 run against 8.2% for Gelu) and EmbedLayerNormalization
    (its int8 form also quantises the LayerNorm's weights, and agreement with fp32 on the
    parity sample fell from 99.6% to 98.8%, for no measured speed). The mask stays a raw 0/1
    matrix (not turned into sequence lengths), so the graph takes the same inputs as before.

    Returns the fused ops and their counts, or ``{}`` when no attention matched (not a
    BERT-style encoder): the graph is then left as traced. The parity check judges the
    result either way.
    """
    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    if not heads or not hidden:
        return {}
    import logging

    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_bias_gelu = False
    options.enable_embed_layer_norm = False
    options.use_raw_attention_mask(True)
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it logs every fusion attempt
    try:
        fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=heads, hidden_size=hidden,
                                         optimization_options=options, opt_level=0)
    except Exception:  # an architecture the fusion patterns do not know: keep the traced graph
        return {}
    finally:
        quiet.setLevel(level)
    counts = {op: n for op, n in fused.get_fused_operator_statistics().items() if n}
    if not counts.get("Attention"):
        return {}
    fused.save_model_to_file(str(path))
    return counts


def _export(wrapper, example, types, path: Path, axes: dict, opset: int) -> list[str]:
    import warnings

    try:
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(wrapper, (example["input_ids"], example["attention_mask"], types), str(path),
                              input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["output"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
    except Exception as exc:  # the tracer's errors are long; say what failed and why
        raise DomainfitError(f"ONNX export failed while tracing the model: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:300]}") from exc
    lines = [f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught
             if not issubclass(w.category, DeprecationWarning)]  # about the exporter, not this graph
    return list(dict.fromkeys(lines))


def quantize_int8(path: Path) -> None:
    """Replace the graph at ``path`` by its dynamically quantised int8 form (weights int8 per
    channel, activations quantised on the fly)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = path.with_name(path.stem + ".int8.onnx")
    # The fused ops (com.microsoft domain) have no ONNX shape inference; their outputs are float.
    quantize_dynamic(str(path), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
    os.replace(int8, path)
