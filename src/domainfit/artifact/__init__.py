"""The artifact: a model folder that loads without its training data, config or network.

``domainfit.json`` (the manifest, built and checked by :mod:`.manifest`), the weights
(safetensors or ONNX), the tokenizer and optional parts; written atomically, manifest last,
with the sha256 of every file it holds. :func:`verify_artifact` checks a folder without
loading its model; :func:`load_tokenizer` refuses a tokenizer that is missing or not the
encoder's.
"""

from .folder import PARITY_SAMPLE, is_artifact, read_manifest, read_parity_sample, write_artifact, write_parity_sample
from .manifest import (FORMAT_VERSION, MANIFEST, build_bundle_manifest, build_manifest, check_bundle_manifest,
                       check_manifest, derive_manifest, read_bundle_manifest)
from .tokenizer import load_plain_tokenizer, load_tokenizer, plain_tokenizer_section
from .verify import verify_artifact

__all__ = ["FORMAT_VERSION", "MANIFEST", "PARITY_SAMPLE", "build_manifest", "derive_manifest", "check_manifest",
           "build_bundle_manifest", "check_bundle_manifest", "read_bundle_manifest", "is_artifact", "read_manifest",
           "write_artifact",
           "write_parity_sample", "read_parity_sample", "load_model", "load_encoder", "load_tokenizer",
           "load_plain_tokenizer", "plain_tokenizer_section", "verify_artifact"]


def __getattr__(name: str):
    # load_model and load_encoder need torch; reading a manifest (the registry, `domainfit
    # info`) does not.
    if name in ("load_model", "load_encoder"):
        from . import load

        return getattr(load, name)
    raise AttributeError(name)
