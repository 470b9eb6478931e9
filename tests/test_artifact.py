"""The artifact contract: one manifest builder and check, atomic writes, and manifests
written before the schema still loading."""

from __future__ import annotations

import json

import pytest

import domainfit
from domainfit.artifact import MANIFEST, build_manifest, read_manifest, write_artifact
from domainfit.core.errors import ManifestError
from domainfit.core.io import staged_folder
from helpers import fast_settings, write_task_data

TEXTS = ["where is my card", "refund my order please", "forgot my password"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("artifact")
    out = tmp / "model"
    domainfit.train(output=str(out), model=str(tiny_model),
                    **fast_settings(**{"data.train": str(write_task_data(tmp, "classification")),
                                       "training.epochs": 2}))
    return out


def _rewrite(folder, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_a_manifest_written_before_the_schema_still_loads(trained, tmp_path):
    """The manifest exactly as domainfit 0.1.0 wrote it before the schema (no ``backend``, a
    zero-shot-style ``model`` section without ``kind``), with today's weights."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained, old)
    current = json.loads((trained / MANIFEST).read_text())
    legacy = {
        "task": "classification", "task_variant": None, "labels": current["labels"],
        "base_model": {"name": current["base_model"]["name"], "weights_sha256": current["base_model"]["weights_sha256"]},
        "method": {"name": "full", "options": {}, "trainable_parameters": 100, "total_parameters": 200,
                   "trainable_share": 0.5, "learning_rate": 0.003},
        "model": {"num_outputs": len(current["labels"]), "pooling": "mean", "max_length": current["model"]["max_length"],
                  "normalize": False},
        "config": current["config"],
        "training": {"steps": 10, "best_step": 10, "best_val_accuracy": 1.0, "stopped_early": False,
                     "precision": "fp32", "processes": 1, "seconds_this_session": 1.0, "history": []},
        "data": {"train": {"source": "train.jsonl", "sha256": "0" * 64, "rows": 36, "skipped": 0}},
        "split": {"train_rows": 32, "added_by_method": 0, "validation_rows": 4, "validation_from": "train (10%, seeded)"},
        "warnings": [], "metrics": {"validation": {"accuracy": 1.0, "primary_metric": "accuracy"}},
        "format_version": 1, "domainfit_version": "0.1.0", "weights": "model.safetensors",
        "created_at": "2026-11-30T12:00:00+00:00",
    }
    (old / MANIFEST).write_text(json.dumps(legacy, indent=2))
    assert domainfit.load(old).predict(TEXTS) == domainfit.load(trained).predict(TEXTS)
    assert read_manifest(old)["split"] == legacy["split"]  # sections outside the schema are kept


@pytest.mark.parametrize("change, field", [
    (lambda m: m["model"].update(max_length="long"), "model.max_length"),
    (lambda m: m.pop("task"), "task"),
    (lambda m: m["model"].update(pooling="max"), "model.pooling"),
    (lambda m: m.update(labels="card,refund"), "labels"),
    (lambda m: m.update(backend="tflite"), "backend"),
])
def test_a_bad_field_is_named(trained, tmp_path, change, field):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained, bad)
    _rewrite(bad, change)
    with pytest.raises(ManifestError, match=f"field '{field}'"):
        domainfit.load(bad)


def test_newer_formats_and_broken_json_are_refused(trained, tmp_path):
    import shutil

    newer = tmp_path / "newer"
    shutil.copytree(trained, newer)
    _rewrite(newer, lambda m: m.update(format_version=99))
    with pytest.raises(ManifestError, match="newer domainfit"):
        read_manifest(newer)
    (newer / MANIFEST).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(newer)


def test_the_builder_refuses_what_no_reader_could_load():
    with pytest.raises(ManifestError, match="model.num_outputs"):
        build_manifest(task="classification", labels=["a"], base_model={"name": "m"}, method={"name": "full"},
                       model={"max_length": 8}, config={}, training={}, data={}, weights="model.safetensors")


def test_a_failed_write_leaves_nothing(trained, tmp_path):
    manifest = read_manifest(trained)
    dest = tmp_path / "never"

    def fill(staging):
        (staging / "half.bin").write_bytes(b"x")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_artifact(dest, manifest, fill=fill)
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_staged_folder_replaces_or_merges(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with staged_folder(dest) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    with staged_folder(dest, merge=True, last="z.txt") as staging:
        (staging / "z.txt").write_text("last")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt", "z.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no staging folder left behind
