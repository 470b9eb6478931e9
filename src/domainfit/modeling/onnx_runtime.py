"""Running an exported ONNX graph with onnxruntime, in place of the torch model.

:class:`OnnxModel` answers ``model(**batch)`` and ``model.embed(**batch)`` with torch
tensors, so everything that predicts (``predict_logits``, the tasks, the Predictor) treats
an ONNX artifact like a torch one. Written by :mod:`domainfit.export`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from ..core.errors import DomainfitError, ManifestError
from ..core.io import inside

__all__ = ["OnnxModel", "load_onnx"]


class OnnxModel:
    """An ONNX graph that stands in for the torch model wherever domainfit predicts
    (``model(**batch)`` and ``model.embed(**batch)`` return torch tensors)."""

    training = False

    def __init__(self, path: Path, embedding: bool, threads: int | None = None):
        self.path = Path(path)
        self.threads = threads or (os.cpu_count() or 1)
        self.session = self._session(self.threads)
        self.embedding = embedding
        self.inputs = {i.name for i in self.session.get_inputs()}  # a graph may drop inputs it never reads
        self._device = torch.zeros(0)
        self._single = None
        self._pool = None
        self._lock = threading.Lock()

    def _session(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # onnxruntime fuses the int8 graph's residual Add + LayerNorm into SkipLayerNormalization,
        # whose CPU kernel is several times slower than the two ops it replaces: on Banking77
        # it took 13% of an int8 run for 6 nodes, where the 7 plain LayerNorms took 2%. Without
        # that fusion one single-threaded run goes from ~600 to ~680 texts/s, and the int8
        # predictions agree with fp32 as often (the fp32 MiniLM graph did not get the fusion).
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=["SkipLayerNormFusion"])

    def run_many(self, batches: list[dict], embeddings: bool = False) -> list[torch.Tensor]:
        """Outputs for several batches. With more than one batch and core, the batches run
        side by side, one single-threaded run per core: short sequences give small matrix
        products that one core handles well, and two independent runs beat one run split
        across two cores (Banking77 int8: ~900 against ~800 texts/s on 2 cores). One batch
        (a single request) keeps every core on it, for latency."""
        if embeddings and not self.embedding:
            return [self.embed(**b) for b in batches]  # raises the clear error
        if self.threads < 2 or len(batches) < 2:
            return [self._run(**b) for b in batches]
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._single = self._session(1)
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="domainfit-onnx")
        return list(self._pool.map(lambda b: self._run(session=self._single, **b), batches))

    def parameters(self):
        yield self._device

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def _run(self, input_ids, attention_mask, token_type_ids=None, session=None, **_):
        """One batch: torch tensors or int64 numpy arrays in, a torch tensor out."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": np.zeros_like(input_ids) if token_type_ids is None else token_type_ids}
        feeds = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in feeds.items() if k in self.inputs}
        return torch.from_numpy((session or self.session).run(None, feeds)[0])

    def __call__(self, input_ids, attention_mask, **extra):
        return self._run(input_ids, attention_mask, **extra)

    def embed(self, input_ids, attention_mask, **extra):
        if not self.embedding:
            raise DomainfitError("an ONNX export of this model holds only its outputs, not text vectors; embed "
                                 "with the original (torch) model.")
        return self._run(input_ids, attention_mask, **extra)


def load_onnx(path: Path, manifest: dict) -> OnnxModel:
    """The graph of an ONNX artifact folder (``manifest["weights"]``, a file inside it).

    Raises:
        ManifestError: the graph is missing, outside the folder, or onnxruntime cannot read it.
    """
    graph = inside(path, manifest["weights"])
    if not graph.is_file():
        raise ManifestError(f"{graph} is missing: the ONNX graph of this model.")
    try:
        return OnnxModel(graph, embedding=manifest["model"].get("kind") == "embedding")
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail...) for a bad graph
        text = str(exc).strip()
        raise ManifestError(f"{graph} is not an ONNX graph onnxruntime can run "
                            f"({text.splitlines()[0][:300] if text else type(exc).__name__}).") from exc
