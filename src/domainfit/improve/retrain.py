"""``domainfit retrain``: a model learns new labelled rows, starting from where it is.

The new model warm-starts from the parent's weights (``training.init_from``) with the
parent's configuration (task, base model, method, settings), trained on the new rows
(feedback exports, relabelled audit rows, active-learning picks) plus a replay of the
parent's own training rows: ``all`` of them (default), ``N`` of them (seeded sample) or
``0``. A new row whose text repeats a replayed one replaces it: a correction wins over the
label it corrects. Without a validation file of its own, the run validates on a stratified
held-out share of the replayed rows plus the new rows, which it also trains on: the checkpoint
kept learnt the new rows without forgetting the old ones (its validation figure is therefore
optimistic; ``domainfit gate`` on golden data is the judge). The manifest's ``retrain``
section records the parent, each added file (sha256, rows, new labels) and the replay;
``parent`` records the weights started from.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..core.errors import ConfigError
from ..core.ui import escape, say
from .audit import fold_text, read_labelled

__all__ = ["retrain", "training_rows"]


def _replay_count(replay: str | int, available: int) -> int:
    if str(replay).lower() == "all":
        return available
    try:
        count = int(replay)
    except ValueError:
        raise ConfigError(f"--replay {replay!r}: give all, or a number of the parent's training rows.") from None
    if count < 0:
        raise ConfigError(f"--replay must be all or 0 or more, not {count}.")
    return min(count, available)


def _split(rows: list[dict], label_col: str, fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A stratified share of ``rows`` for validation (a label with one row keeps it in training)."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row[label_col], []).append(i)
    held: set[int] = set()
    for positions in by_label.values():
        if len(positions) >= 2:
            held.update(rng.sample(positions, max(1, round(fraction * len(positions)))))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def training_rows(model: str | Path, original_data: str | Path | None = None) -> tuple[list[tuple[str, str]], str]:
    """The ``(text, label)`` rows a model was trained on, and where they came from: its
    training file, or for a retrained model its parent's rows (corrected by, and followed
    by) the files it added. ``original_data`` stands in for the first model's training file.

    Raises:
        ConfigError: a file of the lineage is gone.
    """
    from ..artifact import read_manifest

    manifest = read_manifest(model)
    data = manifest["config"]["data"]
    text_col, label_col = data["text_column"], data["label_column"]
    section = manifest.get("retrain")
    if section is None:
        source = Path(original_data or data.get("train") or "")
        if not source.is_file():
            raise ConfigError(f"the training data of {model} ({data.get('train') or 'in-memory rows'}) is not here to "
                              "replay: pass --original-data FILE, or --replay 0 to train on the new rows alone.")
        recorded = (manifest.get("data", {}).get("train") or {}).get("sha256")
        from ..data import file_sha256

        if recorded and file_sha256(source) != recorded:
            say(f"[yellow]warning:[/] {escape(str(source))} changed since {escape(str(model))} was trained on it.")
        _, texts, labels = read_labelled(source, text_col, label_col, min_labels=1)
        return list(zip(texts, labels)), str(source)
    rows: list[tuple[str, str]] = []
    if section["replay"]["rows"]:
        rows, _ = training_rows(section["parent"], original_data)
    added: list[tuple[str, str]] = []
    for item in section["added"]:
        if not Path(item["source"]).is_file():
            raise ConfigError(f"{item['source']}, which {model} was retrained with, is gone: pass --replay 0, or "
                              "restore it.")
        _, texts, labels = read_labelled(item["source"], text_col, label_col, min_labels=1)
        added += list(zip(texts, labels))
    corrected = {fold_text(t) for t, _ in added}
    return [r for r in rows if fold_text(r[0]) not in corrected] + added, f"the lineage of {model}"


def retrain(model: str | Path, add: list[str | Path], output: str | Path, *, replay: str | int = "all",
            epochs: float | None = None, seed: int | None = None, overwrite: bool = False, resume: str = "auto",
            original_data: str | Path | None = None, replay_from: str | Path | None = None):
    """Train a new model from ``model`` on the rows of ``add`` plus a replay of its own data.

    Args:
        original_data: the first model's training file, where it moved since (default: the
            path in its configuration).
        replay_from: a file of rows to replay instead of the model's own (e.g. its rows
            with the ones an audit flagged left out).

    Returns:
        The :class:`~domainfit.run.TrainResult` of the new model.

    Raises:
        ConfigError: a model that cannot warm-start (an ONNX export, a zero-shot model), no
            new rows, or the parent's training data gone while a replay asks for it.
    """
    from ..artifact import is_artifact, read_manifest
    from ..core.config import RunConfig
    from ..data import file_sha256
    from ..run.supervised import fit_and_write, prepare

    if not is_artifact(model):
        raise ConfigError(f"{model} is not a domainfit model folder (no domainfit.json).")
    if not add:
        raise ConfigError("nothing to add: pass --add FILE with the new labelled rows.")
    manifest = read_manifest(model)
    if manifest.get("backend", "torch") != "torch" or manifest["method"]["name"] == "zeroshot":
        raise ConfigError(f"{model} holds no trainable weights to start from ({manifest.get('backend', 'torch')} "
                          f"{manifest['method']['name']} model): retrain the model it was exported from, or train "
                          "anew.")
    cfg = RunConfig.from_dict(manifest["config"])
    text_col, label_col = cfg.data.text_column, cfg.data.label_column

    added_rows, added_info, known = [], [], set(manifest.get("labels", []))
    for path in add:
        _, texts, labels = read_labelled(path, text_col, label_col, min_labels=1)
        new = sorted(set(labels) - known)
        added_rows += [{text_col: t, label_col: lab} for t, lab in zip(texts, labels)]
        added_info.append({"source": str(path), "sha256": file_sha256(Path(path)), "rows": len(texts),
                           "new_labels": new})
        if new:
            say(f"[yellow]note:[/] {escape(str(path))} brings new label(s): {escape(', '.join(new[:10]))}")

    replay_rows: list[dict] = []
    replay_info: dict = {"asked": str(replay), "rows": 0}
    count_asked = _replay_count(replay, 10**12)  # a malformed value fails before anything is read
    if count_asked:
        if replay_from is not None:
            _, texts, labels = read_labelled(replay_from, text_col, label_col, min_labels=1)
            old, where = list(zip(texts, labels)), str(replay_from)
        else:
            old, where = training_rows(model, original_data)
        corrected = {fold_text(r[text_col]) for r in added_rows}
        pool = [{text_col: t, label_col: lab} for t, lab in old if fold_text(t) not in corrected]
        count = min(count_asked, len(pool))
        rng = random.Random(cfg.training.seed if seed is None else seed)
        replay_rows = pool if count == len(pool) else rng.sample(pool, count)
        replay_info = {"asked": str(replay), "source": where, "rows": len(replay_rows),
                       "replaced_by_corrections": len(old) - len(pool)}

    cfg.output = str(output)
    cfg.training.init_from = str(Path(model).resolve())
    cfg.data.train = None
    cfg.data.shots = None
    if epochs is not None:
        cfg.training.epochs = epochs
    if seed is not None:
        cfg.training.seed = seed
    for name in ("validation", "eval"):
        path = getattr(cfg.data, name)
        if path and not Path(path).is_file():
            say(f"[yellow]warning:[/] the parent's {name} data {escape(str(path))} is gone; training without it.")
            setattr(cfg.data, name, None)
    validation_rows = None
    if cfg.data.validation is None and replay_rows:
        # Every new row (a correction, a pick a person labelled) is trained on, and validates
        # too, beside a held-out share of the replayed rows: the checkpoint kept is one that
        # learnt the new rows without forgetting the old ones. The gate, on data neither saw,
        # is the judge of the result.
        replay_rows, held_out = _split(replay_rows, label_col, cfg.data.val_fraction, cfg.training.seed)
        validation_rows = held_out + added_rows
        replay_info["validation_rows"] = len(held_out)
    say(f"Retraining {escape(str(model))}: {len(added_rows)} new rows + {len(replay_rows)} replayed"
        + (f"; validation: {len(validation_rows) - len(added_rows)} held-out replayed rows and the new rows."
           if validation_rows else "."))
    section = {"parent": str(Path(model).resolve()), "parent_created_at": manifest.get("created_at"),
               "added": added_info, "replay": replay_info}
    prepared = prepare(cfg, replay_rows + added_rows, validation_data=validation_rows or None)
    return fit_and_write(prepared, resume=resume, overwrite=overwrite, manifest_changes={"retrain": section})
