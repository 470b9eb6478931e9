"""Export an artifact to ONNX (optionally int8), with a parity check against the torch model.

``domainfit export MODEL --format onnx [--quantize int8] --output DIR`` writes a new
artifact folder: the same manifest (plus an ``export`` section), the tokenizer, and
``model.onnx`` instead of safetensors. It runs with ``onnxruntime`` alone and loads
through ``domainfit.load`` like any other artifact (the Predictor picks the backend from the
manifest). How the graph is made: :mod:`.onnx`.

Parity: the exported graph and the torch model score the same held-out texts (``--data``,
else the sample of validation texts stored in the artifact at training time); the largest
difference and the share of identical decisions (the task says what a decision is) are
written into the manifest, and the export fails (nothing is written) when the agreement is
below ``--min-agreement`` (default 0.99).

An n-gram companion (``training.ensemble``) is copied as it is: the graph holds the
encoder, and the exported artifact blends the companion in exactly as the original does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..artifact import PARITY_SAMPLE, derive_manifest, plain_tokenizer_section, read_manifest, write_artifact
from ..core.errors import ConfigError, DomainfitError
from ..modeling.ngram import COMPANION_FILES
from .onnx import fuse_attention, merge_peft, quantize_int8, trace
from .parity import compare, outputs, parity_inputs

__all__ = ["export_model"]


def export_model(model_path: str | Path, output: str | Path, *, fmt: str = "onnx", quantize: str | None = None,
                 data: Any = None, min_agreement: float = 0.99, opset: int = 17, fuse: bool = True) -> dict:
    """Export an artifact to ONNX (fp32 or int8) and check parity; returns the ``export``
    section written into the new manifest. ``fuse=False`` keeps the traced graph in standard
    ONNX ops (for other runtimes) instead of onnxruntime's fused attention.

    Raises:
        DomainfitError: unsupported model, output folder in use, or parity below ``min_agreement``.

    Example:
        >>> export_model("my-model", "my-model-int8", quantize="int8")["parity"]["agreement"]  # doctest: +SKIP
        0.996
    """
    from ..inference import Predictor

    if fmt != "onnx":
        raise ConfigError(f"--format must be onnx, got {fmt!r}.")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8 (or left out for fp32), got {quantize!r}.")
    if not 0 < min_agreement <= 1:
        raise ConfigError(f"--min-agreement must be in (0, 1], got {min_agreement}.")
    source_path, output = Path(model_path), Path(output)
    if output.exists() and any(output.iterdir()):
        raise DomainfitError(f"{output} exists and is not empty; choose another --output.")
    source = Predictor(source_path)
    if source.backend == "onnx":
        raise DomainfitError(f"{model_path} is already an ONNX export; export the original model.")
    if source.manifest["model"].get("kind") == "lm-label-scorer":
        raise DomainfitError("a zero-shot LM-backend model scores labels with a generative model and cannot be "
                             "exported to ONNX; use the embedding backend (the default) for an exportable model.")
    examples = parity_inputs(source, data)
    if not examples:
        raise ConfigError("no texts for the parity check.")
    reference = outputs(source, examples)
    model = getattr(source.model, "inner", source.model)  # the encoder model (an n-gram companion is copied)
    merge_peft(model)
    model.eval()
    manifest = derive_manifest(source.manifest, backend="onnx", weights="model.onnx")
    manifest.pop("evidence", None)  # the training texts' vectors are the torch model's: not exported
    task = source.task

    def build(staging: Path) -> dict:
        graph = staging / "model.onnx"
        traced = trace(model, source.tokenizer, graph, embedding=task.model_kind == "embedding",
                       per_token=task.model_kind == "token", opset=opset)
        fused = fuse_attention(graph, getattr(getattr(model, "encoder", None), "config", None)) if fuse else {}
        if quantize == "int8":
            quantize_int8(graph)
        source.tokenizer.save_pretrained(str(staging))
        for name in ("config.json", PARITY_SAMPLE, *COMPANION_FILES):
            if (source_path / name).is_file():
                shutil.copy2(source_path / name, staging / name)
        if (source_path / "index").is_dir():  # a retrieval model's corpus index (rebuild it for int8)
            shutil.copytree(source_path / "index", staging / "index")
        difference, agreement = compare(task, reference, outputs(Predictor(staging, manifest), examples))
        plain = None
        if task.model_kind == "sequence":  # predictions may then encode without transformers
            pairs = [e.text_pair or "" for e in examples] if task.needs_pair else None
            plain = plain_tokenizer_section(staging, source.tokenizer, [e.text for e in examples], pairs)
        section = {"format": "onnx", "quantize": quantize or "fp32", "opset": opset, "source": str(model_path),
                   "fused": fused, **({"plain_tokenizer": plain} if plain else {}),
                   "parity": {"texts": len(examples), "max_abs_difference": difference, "agreement": agreement,
                              "min_agreement": min_agreement, "from": "--data" if data is not None else PARITY_SAMPLE},
                   "bytes": graph.stat().st_size, "tracer_warnings": traced}
        if agreement < min_agreement:
            warned = (f" The tracer warned that the graph might not generalise ({len(traced)} warning(s), first: "
                      f"{traced[0]})." if traced else "")
            raise DomainfitError(f"parity check failed: the exported model agrees with the original on "
                                 f"{agreement:.2%} of {len(examples)} texts (largest probability difference "
                                 f"{difference:.4f}), below --min-agreement {min_agreement:.2%}.{warned} Nothing "
                                 "was written; try without --quantize.")
        return {"export": section}

    return read_manifest(write_artifact(output, manifest, fill=build))["export"]
