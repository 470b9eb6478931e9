"""``domainfit runs compare`` and ``runs list`` on two tiny trained model folders."""

from __future__ import annotations

import base64
import json
import re

import pytest

import domainfit
from conftest import write_intents_csv
from domainfit.artifact.runs import compare_runs, list_runs
from domainfit.cli import main
from helpers import fast_settings


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """ROOT/a/full (method full, seed 1) and ROOT/b/lora (method lora, seed 2), both scored
    on the same evaluation file; ROOT/notes holds no model."""
    root = tmp_path_factory.mktemp("models")
    data = write_intents_csv(root / "d.csv", per_class=6)
    (root / "notes").mkdir()
    common = fast_settings(**{"data.train": str(data), "data.eval": str(data), "training.epochs": 3,
                              "training.tracking": "none"})
    domainfit.train(output=str(root / "a" / "full"), model=str(tiny_model), **dict(common, **{"training.seed": 1}))
    domainfit.train(output=str(root / "b" / "lora"), model=str(tiny_model), method="lora",
                    **dict(common, **{"training.seed": 2, "method.options": {"r": 4}}))
    return root


def _manifest(folder):
    return json.loads((folder / "domainfit.json").read_text())


def test_compare_shows_only_the_settings_that_differ_and_the_final_metrics(trained):
    full, lora = trained / "a" / "full", trained / "b" / "lora"
    comparison = compare_runs([full, lora])
    assert [(r.name, r.path) for r in comparison.runs] == [("a/full", str(full)), ("b/lora", str(lora))]
    differences = {row.name: row.values for row in comparison.differences}
    assert differences["training.seed"] == [1, 2]
    assert differences["method.name"] == ["full", "lora"]
    assert differences["method.options.r"] == [None, 4]
    for same in ("training.epochs", "training.batch_size", "data.train", "task", "base_model.name",
                 "data_sha256.train", "output"):
        assert same not in differences, same
    results = {row.name: row for row in comparison.results}
    assert comparison.results[0].name == "accuracy"  # the primary metric first
    for name in ("accuracy", "macro_f1"):
        assert results[name].values == pytest.approx([_manifest(full)["metrics"]["eval"][name],
                                                      _manifest(lora)["metrics"]["eval"][name]])
    assert results["steps"].values == [_manifest(full)["training"]["steps"], _manifest(lora)["training"]["steps"]]
    assert not comparison.notes  # the same evaluation data: comparable
    for run in comparison.runs:  # learning curves from metrics.jsonl
        assert run.train_curve and run.eval_curve and run.eval_metric == "accuracy"


def test_compare_writes_html_with_an_inline_png_and_markdown_with_a_png(trained, tmp_path):
    full, lora = trained / "a" / "full", trained / "b" / "lora"
    page = tmp_path / "cmp.html"
    assert main(["runs", "compare", str(full), str(lora), "--output", str(page)]) == 0
    text = page.read_text()
    assert "training.seed" in text and "method.options.r" in text and "macro_f1" in text
    assert "training.batch_size" not in text  # equal in both runs
    encoded = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert encoded and base64.b64decode(encoded.group(1)).startswith(b"\x89PNG\r\n\x1a\n")

    notes = tmp_path / "cmp.md"
    assert main(["runs", "compare", str(full), str(lora), "--output", str(notes)]) == 0
    assert "| training.seed | 1 | 2 |" in notes.read_text() and "![Learning curves](cmp_curves.png)" in notes.read_text()
    assert (tmp_path / "cmp_curves.png").read_bytes().startswith(b"\x89PNG")


def test_compare_prints_tables_or_json_on_stdout(trained, capsys):
    full, lora = trained / "a" / "full", trained / "b" / "lora"
    assert main(["runs", "compare", str(full), str(lora)]) == 0
    out, err = capsys.readouterr()
    accuracy = f"{_manifest(lora)['metrics']['eval']['accuracy']:.4f}"
    assert "Settings that differ" in out and "training.seed" in out and accuracy in out
    assert "--output" in err and "training.seed" not in err
    assert main(["runs", "compare", str(full), str(lora), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["differences"]["training.seed"] == [1, 2] and [r["path"] for r in data["runs"]] == ["a/full", "b/lora"]
    assert data["results"]["accuracy"][1] == pytest.approx(_manifest(lora)["metrics"]["eval"]["accuracy"])


def test_list_finds_the_model_folders_below_a_root(trained, capsys):
    runs = list_runs(trained)
    assert [r.name for r in runs] == ["a/full", "b/lora"]  # oldest first
    assert main(["runs", "list", str(trained), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["task"], r["method"], r["primary_metric"]) for r in rows] == [
        ("a/full", "classification", "full", "accuracy"), ("b/lora", "classification", "lora", "accuracy")]
    assert rows[1]["value"] == pytest.approx(_manifest(trained / "b" / "lora")["metrics"]["eval"]["accuracy"])
    assert rows[0]["base_model"] == _manifest(trained / "a" / "full")["base_model"]["name"]
    assert rows[0]["created_at"] == _manifest(trained / "a" / "full")["created_at"]
    assert main(["runs", "list", str(trained)]) == 0
    table = capsys.readouterr().out
    assert "a/full" in table and "b/lora" in table and "lora" in table


@pytest.mark.parametrize("args, message", [
    (["runs", "compare", "{root}/a/full", "{root}/notes"], "is not a domainfit model folder"),
    (["runs", "compare", "{root}/a/full", "{root}/missing"], "does not exist"),
    (["runs", "compare", "{root}/a/full", "--output", "{root}/cmp.txt"], "a .html or a .md file"),
    (["runs", "list", "{root}/missing"], "does not exist"),
])
def test_bad_input_is_a_clear_message_and_exit_2(trained, capsys, args, message):
    assert main([a.format(root=trained) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
