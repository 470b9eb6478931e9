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


# --- what a folder holds is recorded and checked (issue 16: items 2, 4, 7, 12) ---------------

def _copy(trained, tmp_path, name="copy", legacy=False):
    """A copy of the trained artifact; ``legacy`` drops the record of its files, as in a
    manifest written before it was kept."""
    import shutil

    folder = tmp_path / name
    shutil.copytree(trained, folder)
    if legacy:
        _rewrite(folder, lambda m: [m.pop("files"), m.pop("tokenizer_files")])
    return folder


def _evaluate(capsys, folder, data) -> tuple[int, str]:
    """``domainfit evaluate`` in this process: its exit code and what it printed on stderr."""
    from domainfit.cli import main

    capsys.readouterr()
    code = main(["evaluate", str(folder), "--data", str(data)])
    return code, capsys.readouterr().err


def test_the_manifest_records_every_file_and_the_tokenizer(trained):
    from domainfit.artifact import verify_artifact
    from domainfit.artifact.files import sha256_file

    manifest = read_manifest(trained)
    assert {"model.safetensors", "config.json", "tokenizer.json", "parity_sample.jsonl"} <= set(manifest["files"])
    assert MANIFEST not in manifest["files"] and "metrics.jsonl" not in manifest["files"]  # run files are not
    assert manifest["tokenizer_files"] and set(manifest["tokenizer_files"]) <= set(manifest["files"])
    assert all(manifest["files"][n] == sha256_file(trained / n) for n in manifest["files"])
    assert verify_artifact(trained) == manifest


def _labels(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("label,description\ncard,my card\nrefund,money back\npassword,forgot password\n")
    return path


def _export(tmp, tiny, trained, lm):
    from domainfit.export import export_model

    export_model(trained, tmp / "w")


WRITERS = {
    "zero-shot": lambda tmp, tiny, trained, lm: domainfit.train(
        output=str(tmp / "w"), model=str(tiny), **{"method.name": "zeroshot", "data.labels": str(_labels(tmp))}),
    "lm backend": lambda tmp, tiny, trained, lm: domainfit.train(
        output=str(tmp / "w"), **{"method.name": "zeroshot", "data.labels": str(_labels(tmp)),
                                  "method.options.backend": "lm", "method.options.lm_model": str(lm)}),
    "onnx export": _export,
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_records_the_files_and_the_tokenizer(trained, tmp_path, tiny_model, tiny_lm, writer):
    """Training (above), zero-shot, the LM backend and the export all write through
    write_artifact: each new folder verifies, its tokenizer recorded."""
    from domainfit.artifact import verify_artifact

    WRITERS[writer](tmp_path, tiny_model, trained, tiny_lm)
    manifest = verify_artifact(tmp_path / "w")
    assert "tokenizer.json" in manifest["tokenizer_files"]
    card = (tmp_path / "w" / "report" / "model_card.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "library_name: domainfit" in card and "# Model card: w" in card
    if manifest["weights"]:
        assert manifest["weights"] in manifest["files"]
    (tmp_path / "w" / "tokenizer.json").unlink()
    with pytest.raises(ManifestError, match="tokenizer.json is missing"):
        domainfit.load(tmp_path / "w")


@pytest.mark.parametrize("legacy", [False, True])
def test_a_folder_without_its_tokenizer_is_refused(trained, tmp_path, capsys, legacy):
    """Without tokenizer.json and tokenizer_config.json, transformers builds a tokenizer with
    an empty vocabulary and every prediction is wrong: refused, with exit code 2."""
    folder = _copy(trained, tmp_path, legacy=legacy)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    expected = "holds no tokenizer" if legacy else "tokenizer.json is missing"
    with pytest.raises(ManifestError, match=expected):
        domainfit.load(folder)
    code, err = _evaluate(capsys, folder, write_task_data(tmp_path, "classification"))
    assert code == 2 and expected in err and "Traceback" not in err


def test_another_tokenizer_is_refused(trained, tmp_path):
    from transformers import BertTokenizer

    folder = _copy(trained, tmp_path)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    BertTokenizer(vocab={t: i for i, t in enumerate(specials + ["card"])}).save_pretrained(str(folder))
    with pytest.raises(ManifestError, match="tokenizer.json has changed since the model was written"):
        domainfit.load(folder)
    _rewrite(folder, lambda m: [m.pop("files"), m.pop("tokenizer_files")])  # as an older manifest
    with pytest.raises(ManifestError, match="empty vocabulary|knows 6 tokens"):
        domainfit.load(folder)


@pytest.mark.parametrize("vocab_size, expected", [(10, "token ids up to"), (10_000, "encoder was trained with")])
def test_a_tokenizer_that_does_not_fit_the_encoder_is_refused(trained, tmp_path, vocab_size, expected):
    folder = _copy(trained, tmp_path, legacy=True)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, vocab_size=vocab_size)))
    with pytest.raises(ManifestError, match=expected):
        domainfit.load(folder)


def _truncate(folder):
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {
    "truncated weights": (_truncate, "model.safetensors"),
    "empty weights": (lambda f: (f / "model.safetensors").write_bytes(b""), "model.safetensors"),
    "missing config.json": (lambda f: (f / "config.json").unlink(), "config.json"),
    "invalid tokenizer.json": (lambda f: (f / "tokenizer.json").write_text("{broken"), "tokenizer.json"),
    "no base_model": (lambda f: _rewrite(f, lambda m: m.pop("base_model")), "base_model"),
    "model is a string": (lambda f: _rewrite(f, lambda m: m.update(model="bert")), "model"),
    "no num_outputs": (lambda f: _rewrite(f, lambda m: m["model"].pop("num_outputs")), "model.num_outputs"),
    "num_outputs mistyped": (lambda f: _rewrite(f, lambda m: m["model"].update(num_outputs="three")),
                             "model.num_outputs"),
    "num_outputs wrong": (lambda f: _rewrite(f, lambda m: m["model"].update(num_outputs=5)), "model.safetensors"),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "legacy"])
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_artifact_is_a_clear_error(trained, tmp_path, capsys, case, legacy):
    """Each damage gives a ManifestError naming the file or field, and exit code 2 without a
    traceback, whether or not the manifest recorded the files."""
    folder = _copy(trained, tmp_path, legacy=legacy)
    damage, named = CORRUPTIONS[case]
    damage(folder)
    with pytest.raises(ManifestError, match=named):
        domainfit.load(folder)
    code, err = _evaluate(capsys, folder, write_task_data(tmp_path, "classification"))
    assert code == 2 and named in err and "Traceback" not in err, err


def test_a_tokenizer_file_that_is_no_tokenizer_is_a_clear_error(trained, tmp_path):
    folder = _copy(trained, tmp_path, legacy=True)
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(ManifestError, match="the tokenizer does not load"):
        domainfit.load(folder)


def test_verify_artifact_hashes_the_weights_too(trained, tmp_path):
    from domainfit.artifact import verify_artifact

    folder = _copy(trained, tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # same size, header intact: only the sha256 tells
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="model.safetensors has changed"):
        verify_artifact(folder)
    _truncate(folder)
    with pytest.raises(ManifestError, match="model.safetensors is not a readable safetensors file"):
        verify_artifact(folder)


@pytest.mark.parametrize("name", ["../other/model.safetensors", "/etc/passwd", "", "sub/model.safetensors",
                                  "..\\model.safetensors", ".."])
def test_manifest_fields_name_only_files_inside_the_folder(trained, tmp_path, name):
    folder = _copy(trained, tmp_path)
    _rewrite(folder, lambda m: m.update(weights=name))
    with pytest.raises(ManifestError, match="field 'weights'"):
        domainfit.load(folder)
    _rewrite(folder, lambda m: m.update(weights="model.safetensors", files={**m["files"], name: "0" * 64}))
    with pytest.raises(ManifestError, match="field 'files"):
        read_manifest(folder)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json", MANIFEST])
def test_a_symlink_out_of_the_folder_is_refused(trained, tmp_path, name):
    """Another model's weights (or /etc/passwd) behind a symlink are not read."""
    folder = _copy(trained, tmp_path)
    other = _copy(trained, tmp_path, "other")
    (folder / name).unlink()
    (folder / name).symlink_to(other / name)
    with pytest.raises(ManifestError, match="leads outside"):
        domainfit.load(folder)


def test_inside_keeps_names_in_their_folder(tmp_path):
    from domainfit.core.io import inside

    (tmp_path / "real.bin").write_bytes(b"x")
    (tmp_path / "alias.bin").symlink_to(tmp_path / "real.bin")  # a symlink within the folder is fine
    assert inside(tmp_path, "alias.bin") == tmp_path / "alias.bin"
    assert inside(tmp_path, "not-yet.bin") == tmp_path / "not-yet.bin"
    (tmp_path / "out").symlink_to("/etc/passwd")
    for bad in ("out", "../x", "/etc/passwd", "", ".", "a/b", "a\\b", "x\0y"):
        with pytest.raises(ManifestError):
            inside(tmp_path, bad)


def test_an_onnx_graph_outside_the_folder_is_refused(tmp_path):
    from domainfit.modeling.onnx_runtime import load_onnx

    (tmp_path / "m").mkdir()
    (tmp_path / "graph.onnx").write_bytes(b"not a graph")
    (tmp_path / "m" / "model.onnx").symlink_to(tmp_path / "graph.onnx")
    for name in ("../graph.onnx", "/etc/passwd", "model.onnx"):
        with pytest.raises(ManifestError):
            load_onnx(tmp_path / "m", {"weights": name, "model": {"kind": "sequence"}})
    (tmp_path / "m" / "model.onnx").unlink()
    (tmp_path / "m" / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ManifestError, match="not an ONNX graph"):
        load_onnx(tmp_path / "m", {"weights": "model.onnx", "model": {"kind": "sequence"}})


@pytest.mark.parametrize("intent, retrieval", [("../elsewhere", None), ("/etc", None), ("intent", "../r"),
                                               ("link", None)])
def test_a_bundle_names_only_its_own_parts(tmp_path, intent, retrieval):
    from domainfit.apps.customer_service.bundle import BUNDLE_FILE, read_bundle

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (bundle / "link").symlink_to(tmp_path / "elsewhere")
    meta = {"kind": "customer-service", "format_version": 1, "intent": {"path": intent},
            "retrieval": {"path": retrieval, "rerank": None} if retrieval else None}
    (bundle / BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ManifestError, match="intent.path|retrieval.path"):
        read_bundle(bundle)


def test_atomic_writes_reach_the_disk(tmp_path, monkeypatch):
    """The temporary file is flushed before the rename and the folder after it."""
    import os

    from domainfit.core.io import atomic_write_text

    opened, synced = {}, []
    real_open, real_fsync = os.open, os.fsync

    def tracking_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = str(path)
        return fd

    def tracking_fsync(fd):
        synced.append(opened.get(fd, fd))
        return real_fsync(fd)

    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "fsync", tracking_fsync)
    atomic_write_text(tmp_path / "state.json", "{}")
    assert synced[-1] == str(tmp_path) and synced[-2].endswith(".tmp") and len(synced) == 2
    synced.clear()
    with staged_folder(tmp_path / "d") as staging:
        (staging / "a.txt").write_text("a")
    assert any(s.endswith("a.txt") for s in synced) and synced[-1] == str(tmp_path)


@pytest.mark.integration
def test_the_command_line_refuses_a_model_without_its_tokenizer(trained, tmp_path):
    """As the audit ran it: `domainfit evaluate` and `predict` in their own process, exit 2,
    one message, no traceback (it used to exit 0 with accuracy 0.33)."""
    from helpers import run_cli

    folder = _copy(trained, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    data = write_task_data(tmp_path, "classification")
    for args in (["evaluate", str(folder), "--data", str(data)],
                 ["predict", str(folder), "--data", str(data), "--output", str(tmp_path / "out.jsonl")]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "tokenizer.json is missing" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_search_index_linked_from_outside_the_model_is_refused(tmp_path):
    from domainfit.inference.search import INDEX_DIR, load_index

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "index.json").write_text("{}", encoding="utf-8")
    model = tmp_path / "model"
    model.mkdir()
    (model / INDEX_DIR).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ManifestError, match="outside"):
        load_index(model)
    assert load_index(tmp_path / "no-index") is None


def test_the_model_card_states_what_the_manifest_knows(tmp_path, tiny_model):
    """Hugging Face layout (front matter, then sections); language and licence come from the
    base model's own card, the data with its fingerprint and [UNK] share, metrics with the data
    they were measured on; what is not known is said to be unknown."""
    import shutil

    import yaml

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    (base / "README.md").write_text("---\nlanguage: de\nlicense: mit\n---\n# A German model\n", encoding="utf-8")
    data = write_task_data(tmp_path, "classification")
    out = tmp_path / "m"
    domainfit.train(output=str(out), model=str(base), **fast_settings(**{"data.train": str(data),
                                                                         "data.eval": str(data)}))
    manifest = domainfit.load(out).manifest
    assert manifest["base_model"]["language"] == ["de"] and manifest["base_model"]["license"] == "mit"
    text = (out / "report" / "model_card.md").read_text(encoding="utf-8")
    front = yaml.safe_load(text.split("---")[1])
    assert front["language"] == ["de"] and front["license"] == "mit" and front["library_name"] == "domainfit"
    assert "base_model" not in front  # a local folder is not a hub id
    (result,) = front["model-index"][0]["results"]
    accuracy = manifest["metrics"]["eval"]["accuracy"]
    assert {"type": "accuracy", "value": round(accuracy, 4), "name": "accuracy"} in result["metrics"]
    assert result["dataset"]["name"] == f"{data.name} (eval)"
    body = text.split("---", 2)[2]
    train = manifest["data"]["train"]
    assert f"| train | `{data.name}` | {train['rows']} | 0 | {train['sha256'][:16]} | {train['unk_share']:.2%} |" in body
    assert f"On the eval data (`{data.name}`" in body and f"| **accuracy** | {accuracy:.4f} |" in body
    assert "Languages the base model was trained for: de." in body and "`mit`, as its own card states" in body
    for heading in ("## Intended use", "## Data", "## Training procedure", "## Evaluation", "## Limits",
                    "## How to use", "## Licence"):
        assert heading in body
    # continuing from this model carries the base model's facts on
    again = tmp_path / "again"
    domainfit.train(output=str(again), model=str(out), **fast_settings(**{"data.train": str(data)}))
    assert domainfit.load(again).manifest["base_model"]["language"] == ["de"]


def test_the_model_card_says_what_it_does_not_know():
    from domainfit.artifact.card import model_card

    card = model_card({"task": "token-classification", "labels": ["O", "B-LOC", "I-LOC"],
                       "base_model": {"name": "/models/mine"}, "method": {"name": "lora"},
                       "data": {"train": {"source": "/d/ner.jsonl", "rows": 9, "unk_share": 0.3}},
                       "model": {"kind": "token", "max_length": 64}}, "ner")
    assert "not stated by the base model's own card" in card and "licence: not stated" in card
    assert "Entity types: `LOC`." in card and "30.0% of the train data's tokens are unknown" in card
    assert "No labelled data was scored" in card and "model-index" not in card
    assert "sentences are cut into windows" in card


def test_writers_create_missing_folders_and_name_one_they_cannot_write(tmp_path):
    from domainfit.core.errors import ConfigError
    from domainfit.core.io import atomic_file

    with atomic_file(tmp_path / "new" / "deeper" / "out.csv") as part:
        part.write_text("a\n", encoding="utf-8")
    assert (tmp_path / "new" / "deeper" / "out.csv").read_text(encoding="utf-8") == "a\n"
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cannot write .*file/out\.csv"):
        with atomic_file(blocker / "out.csv"):
            pass
    with pytest.raises(ConfigError, match=r"cannot write .*file/folder"):
        with staged_folder(blocker / "folder"):
            pass
