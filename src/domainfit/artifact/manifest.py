"""The manifest (``domainfit.json``): its schema, the one builder every writer uses, and the
check every reader runs.

The schema names what other parts rely on (task, labels, the model's shape, the base model,
the method, the weights file, the backend, the sha256 of every file); fields that name a
file hold a plain name inside the folder, never a path; sections that only record what happened
(``config``, ``training``, ``data``, ``metrics``...) are free-form mappings, and unknown
top-level fields are kept, so a manifest written by a newer release of the same format still
loads. Bundles of the apps (a folder of artifacts) have their own small manifest, built and
checked here too.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..core.errors import ManifestError
from ..core.io import is_plain_name
from ..core.version import __version__

__all__ = ["FORMAT_VERSION", "MANIFEST", "Manifest", "build_manifest", "check_manifest", "derive_manifest",
           "BundleManifest", "build_bundle_manifest", "check_bundle_manifest", "read_bundle_manifest", "BUNDLE_FILE"]

BUNDLE_FILE = "bundle.json"

FORMAT_VERSION = 1
MANIFEST = "domainfit.json"


def _plain(name: str) -> str:
    if not is_plain_name(name):
        raise ValueError("must be the plain name of a file in the model folder (no '/', '\\', '..' or "
                         "absolute path)")
    return name


def _sha256(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("must be a sha256 digest (64 lowercase hex digits)")
    return digest


FileName = Annotated[str, AfterValidator(_plain)]
"""A field that names a file of the artifact folder: a plain name, never a path."""
Digest = Annotated[str, AfterValidator(_sha256)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


class BaseModelInfo(_Section):
    """The pretrained model the artifact was made from."""

    name: str
    weights_sha256: str | None = None


class MethodInfo(_Section):
    """How the base model was adapted (``domainfit.methods``)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    trainable_parameters: int = Field(0, ge=0)
    total_parameters: int = Field(0, ge=0)


class ModelInfo(_Section):
    """The shape of the model: what ``load_model`` rebuilds."""

    kind: str = "sequence"
    num_outputs: int = Field(..., ge=0)
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = Field(..., ge=1)
    normalize: bool = False


class CompanionInfo(_Section):
    """A model blended with the encoder's probabilities (``training.ensemble``)."""

    kind: Literal["ngram"] = "ngram"
    weight: float = Field(..., ge=0, le=1)
    """The encoder's share of the blend; the companion has the rest."""


class TrainingInfo(_Section):
    steps: int = Field(0, ge=0)
    precision: str = "fp32"
    history: list[dict[str, Any]] = Field(default_factory=list)


class Manifest(BaseModel):
    """``domainfit.json`` of an artifact folder (format 1)."""

    model_config = ConfigDict(extra="allow")

    format_version: int = Field(FORMAT_VERSION, ge=0)
    domainfit_version: str = __version__
    created_at: str = ""
    task: str
    task_variant: str | None = None
    labels: list[str] = Field(default_factory=list)
    base_model: BaseModelInfo
    method: MethodInfo
    model: ModelInfo
    weights: FileName | None = None
    backend: Literal["torch", "onnx"] = "torch"
    files: dict[FileName, Digest] = Field(default_factory=dict)
    """sha256 of every file at the folder's top level when it was written (weights,
    ``config.json``, tokenizer files...); empty in manifests written before it was recorded."""
    tokenizer_files: list[FileName] = Field(default_factory=list)
    """The files of the tokenizer (each also in ``files``)."""
    config: dict[str, Any] = Field(default_factory=dict)
    training: TrainingInfo = Field(default_factory=TrainingInfo)
    companion: CompanionInfo | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tokenizer_files_recorded(self):
        missing = [n for n in self.tokenizer_files if n not in self.files]
        if missing:
            raise ValueError(f"tokenizer file {missing[0]!r} has no sha256 in 'files'")
        return self


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r:.60})"
    return f"field '{where}': {first.get('msg')}{shown}"


def check_manifest(data: Any, where: str = MANIFEST) -> dict:
    """Check a manifest read from disk against the schema; returns it as a plain dict with the
    schema's defaults filled in.

    Raises:
        ManifestError: a newer format, or a missing or bad field, named in the message.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"{where} does not hold a JSON object.")
    version = data.get("format_version", 0)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ManifestError(f"{where} was written by a newer domainfit (format {version}); upgrade.")
    try:
        checked = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {_problem(exc)}.") from None
    return checked.model_dump(mode="json")


def build_manifest(*, task: str, labels: list[str], base_model: dict, method: dict, model: dict, config: dict,
                   training: dict, data: dict, weights: str | None, task_variant: str | None = None,
                   warnings: list[str] | None = None, metrics: dict | None = None, **extra: Any) -> dict:
    """The manifest of a new artifact, checked, with the format, the release and the time.

    Every writer (training, zero-shot, the LM backend, export) builds its manifest here;
    ``extra`` holds optional sections (``split``, ``export``, ``backend``...).

    Raises:
        ManifestError: a bad field (a bug in the writer, named in the message).
    """
    body = dict(extra, task=task, task_variant=task_variant, labels=list(labels), base_model=base_model,
                method=method, model=model, config=config, training=training, data=data, weights=weights,
                warnings=list(warnings or []), metrics=dict(metrics or {}), format_version=FORMAT_VERSION,
                domainfit_version=__version__, created_at=_now())
    return check_manifest(body, "the new manifest")


def derive_manifest(source: dict, **changes: Any) -> dict:
    """A new artifact's manifest from another's (an export of it): ``changes`` replace
    sections, and the format, release and time are the new artifact's."""
    # ``files`` describe the source's folder; write_artifact records the new folder's own.
    dropped = ("format_version", "domainfit_version", "created_at", "files", "tokenizer_files")
    body = {k: v for k, v in source.items() if k not in dropped}
    body.update(changes)
    return build_manifest(**body)


class BundleManifest(BaseModel):
    """The manifest of an app's bundle (a folder of artifacts): its kind and format; the rest
    is the app's own."""

    model_config = ConfigDict(extra="allow")

    kind: str
    format_version: int = Field(..., ge=0)
    domainfit_version: str = __version__
    created_at: str = ""


def build_bundle_manifest(kind: str, format_version: int, body: dict) -> dict:
    """A bundle's manifest: ``body`` plus its kind, format, the release and the time."""
    data = dict(body, kind=kind, format_version=format_version, domainfit_version=__version__, created_at=_now())
    try:
        return BundleManifest.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        raise ManifestError(f"the new bundle manifest: {_problem(exc)}.") from None


def check_bundle_manifest(data: Any, kind: str, format_version: int, where: str) -> dict:
    """Check a bundle's manifest: its kind, a format this release reads, every field's type.

    Raises:
        ManifestError: another kind of bundle, a newer format, or a bad field.
    """
    try:
        checked = BundleManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {_problem(exc)}.") from None
    if checked.kind != kind:
        raise ManifestError(f"{where} belongs to a {checked.kind!r} bundle, not a {kind} one.")
    if checked.format_version > format_version:
        raise ManifestError(f"{where} was written by a newer domainfit (format {checked.format_version}); upgrade.")
    return checked.model_dump(mode="json")


def read_bundle_manifest(folder, kind: str, format_version: int, build_hint: str) -> dict:
    """Read and check ``folder/bundle.json`` (see :func:`check_bundle_manifest`).

    Args:
        build_hint: how to build one, for the message when there is none
            (e.g. ``"domainfit app monitor train"``).

    Raises:
        ManifestError: no ``bundle.json``, not JSON, or a bad field.
    """
    import json
    from pathlib import Path

    from ..core.io import inside

    folder = Path(folder)
    meta = inside(folder, BUNDLE_FILE)
    if not meta.is_file():
        raise ManifestError(f"{folder} is not a {kind} bundle (no {BUNDLE_FILE}); build one with {build_hint}.")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{meta} is not valid JSON: {exc}") from None
    return check_bundle_manifest(data, kind, format_version, str(meta))
