"""The command line end to end, in a subprocess, on the tiny model and small files.

Training is the slow part, so the tests that need a classification model share one
(trained once per module); each user mistake is checked to fail before any work starts.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import INTENTS, write_intents_csv
from helpers import ROOT, run_cli

pytestmark = pytest.mark.integration

FAST = ["--set", "training.epochs=10", "--set", "training.batch_size=8", "--set", "training.learning_rate=3e-3",
        "--set", "training.head_learning_rate=1e-2", "--set", "training.early_stopping_patience=0",
        "--set", "training.freeze_embeddings=false"]
COMMANDS = ["train", "evaluate", "predict", "info", "demo"]
# The tiny model gains nothing from a second thread, and on a busy machine two OpenMP
# threads wait on each other: prediction was measured 6x slower with 2 than with 1.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, env=ONE_THREAD)


def _strict_json(text: str):
    """Parse JSON as other tools would: NaN and Infinity are not JSON."""
    def reject(constant):
        raise ValueError(f"{constant} is not valid JSON")
    return json.loads(text, parse_constant=reject)


def _assert_user_error(proc: subprocess.CompletedProcess, *expected: str, paragraph: bool = True) -> None:
    """Exit code 2, a message on stderr naming ``expected``, nothing on stdout, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    for text in expected:
        assert text in proc.stderr, (text, proc.stderr)
    if paragraph:
        assert proc.stderr.strip() and "\n\n" not in proc.stderr.strip(), proc.stderr


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-data")
    return {"train": write_intents_csv(folder / "train.csv", per_class=12),
            "test": write_intents_csv(folder / "test.csv", per_class=4, seed=1),
            "folder": folder}


@pytest.fixture(scope="module")
def trained(files, tiny_model, tmp_path_factory):
    """One classification model trained through the CLI, shared by the tests below."""
    out = tmp_path_factory.mktemp("cli-model") / "model"
    proc = cli("train", "--data", str(files["train"]), "--eval-data", str(files["test"]), "--output", str(out),
               "--model", str(tiny_model), *FAST)
    assert proc.returncode == 0, proc.stderr
    return out, proc


# --- train, evaluate, info ---------------------------------------------------------------

def test_train_writes_a_complete_artifact(trained):
    out, proc = trained
    for name in ("domainfit.json", "model.safetensors", "config.json", "tokenizer_config.json",
                 "metrics.jsonl", "report/metrics.json", "report/report.md"):
        assert (out / name).is_file(), name
    assert (out / "tokenizer.json").is_file() or (out / "vocab.txt").is_file()
    assert not (out / "checkpoints").exists() and not (out / "run.json").exists()
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["task"] == "classification" and manifest["labels"] == sorted(INTENTS)
    assert manifest["config"]["training"]["epochs"] == 10  # --set reached the resolved config
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in record for record in log)
    report = json.loads((out / "report" / "metrics.json").read_text())
    assert report["n"] == 12 and 0 <= report["accuracy"] <= 1
    assert "accuracy" in proc.stderr and "Saved" in proc.stderr
    # no terminal here: plain progress lines and a line per validation, not a silent bar
    assert "validation at step" in proc.stderr and any(ln.startswith("step ") for ln in proc.stderr.splitlines())
    assert "Scoring the eval data" in proc.stderr or "Scoring the validation data" in proc.stderr


def test_train_prints_status_on_stderr_only(trained):
    assert trained[1].stdout == ""


def test_evaluate_json_prints_one_object_on_stdout(trained, files):
    out, _ = trained
    proc = cli("evaluate", str(out), "--data", str(files["test"]), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    metrics = _strict_json(lines[0])
    for key in ("accuracy", "macro_f1"):
        assert isinstance(metrics[key], float) and 0 <= metrics[key] <= 1
    assert metrics["n"] == 12
    assert "{" not in proc.stderr  # status only, never the data


def test_evaluations_get_their_own_folders_and_info_lists_them(trained, files, tmp_path):
    """`evaluate` never replaces the training run's report/: each evaluation writes its own
    folder with the data's fingerprint, and `info` lists them."""
    from domainfit.data import file_sha256

    out, _ = trained
    training_report = (out / "report" / "metrics.json").read_bytes()
    for _ in range(2):
        proc = cli("evaluate", str(out), "--data", str(files["test"]))
        assert proc.returncode == 0, proc.stderr
    assert (out / "report" / "metrics.json").read_bytes() == training_report
    folders = sorted((out / "evaluations").iterdir())
    assert len(folders) >= 2 and all((f / "report.md").is_file() for f in folders)
    record = json.loads((folders[-1] / "evaluation.json").read_text())
    assert record["data_sha256"] == file_sha256(files["test"]) and record["rows"] == 12
    info = cli("info", str(out)).stdout
    assert info.count("evaluated  ") == len(folders) and record["data_sha256"][:12] in info
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    refused = cli("evaluate", str(out), "--data", str(files["test"]), "--report-dir", str(foreign))
    assert refused.returncode == 2 and (foreign / "notes.txt").read_text() == "keep me"
    mine = tmp_path / "report-here"
    assert cli("evaluate", str(out), "--data", str(files["test"]), "--report-dir", str(mine)).returncode == 0
    assert (mine / "metrics.json").is_file()


def test_info_shows_task_labels_and_base_model(trained, tiny_model):
    out, _ = trained
    proc = cli("info", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "classification" in proc.stdout
    for label in INTENTS:
        assert label in proc.stdout
    assert str(tiny_model.resolve()) in proc.stdout

    as_json = cli("info", str(out), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert _strict_json(as_json.stdout) == json.loads((out / "domainfit.json").read_text())


# --- predict -----------------------------------------------------------------------------

# Runs the CLI as a grandchild and reports the peak RSS of that one process (KiB on Linux).
_MEASURE = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def _predict_measured(model, data, output, *extra):
    pytest.importorskip("resource")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"), **ONE_THREAD)
    proc = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "domainfit.cli", "predict",
                           str(model), "--data", str(data), "--output", str(output), *extra],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.splitlines()[-1]) / 1024  # MiB


def _unlabelled_csv(path, rows: int):
    """Short texts, an id column and no label column."""
    words = "card arrive lost where is my refund money password reset login help please".split()
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("id,text\n")
        for i in range(rows):
            fh.write(f"{i},{words[i % 13]} {words[(i * 7) % 13]} {words[(i * 5 + 3) % 13]}\n")
    return path


@pytest.fixture(scope="module")
def small_prediction(trained, files):
    """1,000 unlabelled rows predicted to JSONL, with the peak RSS of the run."""
    data = _unlabelled_csv(files["folder"] / "new.csv", 1000)
    output = files["folder"] / "preds.jsonl"
    rss = _predict_measured(trained[0], data, output)
    return data, output, rss


def test_predict_jsonl_keeps_input_order(small_prediction):
    data, output, _ = small_prediction
    with open(data, encoding="utf-8", newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == texts
    assert [r["line"] for r in records] == list(range(2, len(texts) + 2))  # the header is line 1
    for r in records:
        assert r["label"] in INTENTS and 0 <= r["score"] <= 1
        assert len(r["top_k"]) == 3 and r["top_k"][0] == {"label": r["label"], "score": r["score"]}
        assert [k["score"] for k in r["top_k"]] == sorted((k["score"] for k in r["top_k"]), reverse=True)
    assert not list(output.parent.glob(f".{output.name}.tmp"))


def test_predict_csv(trained, files, tmp_path):
    output = tmp_path / "preds.csv"
    proc = cli("predict", str(trained[0]), "--data", str(files["test"]), "--output", str(output), "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert "12 predictions" in proc.stderr
    with open(output, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(files["test"], encoding="utf-8", newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    assert list(rows[0]) == ["line", "text", "label", "score", "label_1", "score_1", "label_2", "score_2"]
    assert [r["text"] for r in rows] == texts and [int(r["line"]) for r in rows] == list(range(2, 14))
    for r in rows:
        assert r["label"] == r["label_1"] in INTENTS and float(r["score"]) >= float(r["score_2"])


def test_predict_streams_in_bounded_memory(small_prediction, trained, files):
    _, _, small_rss = small_prediction
    rows = 100_000
    data = _unlabelled_csv(files["folder"] / "big.csv", rows)
    output = files["folder"] / "big.jsonl"
    big_rss = _predict_measured(trained[0], data, output)
    with open(output, encoding="utf-8") as fh:
        count = sum(1 for _ in fh)
    assert count == rows
    # Holding all 100k rows and their predictions at once was measured at about +250 MiB;
    # streaming 1,024 rows at a time costs the same as a 1,000-row file.
    assert big_rss - small_rss < 100, (small_rss, big_rss)


# --- help ----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_an_example(command):
    proc = cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Example:" in proc.stdout


# --- user mistakes -------------------------------------------------------------------------

def _mistake_files(folder):
    good = "".join(f"{text},{label}\n" for label, texts in INTENTS.items() for text in texts)
    lines = good.splitlines()
    bad_bytes = ("text,label\n" + "\n".join(lines[:3])).encode() + b"\ncaf\xe9 card,refund\n" + \
        "\n".join(lines[3:]).encode() + b"\n"
    (folder / "latin1.csv").write_bytes(bad_bytes)  # the bad line is line 5
    return {
        "missing": folder / "does-not-exist.csv",
        "no_text": _write(folder / "no_text.csv", "utterance,label\n" + good),
        "latin1": folder / "latin1.csv",
        "empty": _write(folder / "empty.csv", ""),
        "one_class": _write(folder / "one_class.csv", "text,label\n" + "".join(f"{t},card\n" for t in
                                                                                 INTENTS["refund"])),
    }


MISTAKES = {
    # name: (data file key or None, extra arguments, texts the message must hold)
    "missing file": ("missing", [], ["does-not-exist.csv", "no such file"]),
    "missing text column": ("no_text", [], ["'text'", "utterance", "--text-column"]),
    "not utf-8": ("latin1", [], ["latin1.csv, line 5", "UTF-8"]),
    "empty file": ("empty", [], ["empty.csv", "empty"]),
    "one class": ("one_class", [], ["same label 'card'", "two different labels"]),
    "unknown method": (None, ["--method", "magic"], ["magic", "full", "lora"]),
    "unknown task": (None, ["--task", "ranking"], ["ranking", "classification", "multilabel", "regression"]),
    "override without =": (None, ["--set", "training.epochs"], ["key=value"]),
    "unknown setting": (None, ["--set", "training.epoch=3"], ["training.epoch", "known:", "training.epochs"]),
    "out of range": (None, ["--set", "training.batch_size=0"], ["training.batch_size must be positive"]),
    "wrong type": (None, ["--set", "training.epochs=many"], ["training.epochs must be a number", "many"]),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_train_mistakes_exit_2_before_any_work(name, tiny_model, files, tmp_path):
    key, extra, expected = MISTAKES[name]
    data = _mistake_files(tmp_path)[key] if key else files["train"]
    out = tmp_path / "out"
    proc = cli("train", "--data", str(data), "--output", str(out), "--model", str(tiny_model), *extra)
    _assert_user_error(proc, *expected)
    assert not out.exists()


def _bad_rows_csv(path):
    """Training rows with three bad ones, on lines 4, 7 and 9."""
    rows = [f"{t},{label}" for label, texts in INTENTS.items() for t in texts] * 2
    rows.insert(2, ",refund")                     # line 4: no text
    rows.insert(5, "my card is lost,")            # line 7: no label
    rows.insert(7, "send money,refund,extra")     # line 9: a field too many
    return _write(path, "text,label\n" + "\n".join(rows) + "\n")


def test_bad_rows_are_listed_by_default(tiny_model, tmp_path):
    data = _bad_rows_csv(tmp_path / "bad.csv")
    proc = cli("train", "--data", str(data), "--output", str(tmp_path / "out"), "--model", str(tiny_model))
    _assert_user_error(proc, "3 problem(s)", "bad.csv, line 4", "bad.csv, line 7", "bad.csv, line 9",
                       "--on-bad-rows skip")
    assert not (tmp_path / "out").exists()


def test_skip_bad_rows_and_unseen_eval_labels(tiny_model, tmp_path):
    """--on-bad-rows skip trains and records each skipped row; an eval label never seen in
    training is warned about and scored as an error."""
    data = _bad_rows_csv(tmp_path / "bad.csv")
    seen = [(t, label) for label, texts in INTENTS.items() for t in texts]
    evaluation = _write(tmp_path / "eval.csv", "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in seen)
                        + "close my account,account_closing\nclose account please,account_closing\n")
    out = tmp_path / "out"
    proc = cli("train", "--data", str(data), "--eval-data", str(evaluation), "--output", str(out),
               "--model", str(tiny_model), "--on-bad-rows", "skip", *FAST, "--set", "training.epochs=2")
    assert proc.returncode == 0, proc.stderr
    with open(out / "skipped_rows.csv", encoding="utf-8", newline="") as fh:
        skipped = {int(row["line"]): row for row in csv.DictReader(fh)}
    assert sorted(skipped) == [4, 7, 9]
    assert "text" in skipped[4]["reason"] and "label" in skipped[7]["reason"] and "fields" in skipped[9]["reason"]
    assert skipped[7]["text"] == "my card is lost"
    assert "left out" in proc.stderr

    assert "warning" in proc.stderr and "'account_closing'" in proc.stderr
    metrics = json.loads((out / "domainfit.json").read_text())["metrics"]["eval"]
    assert metrics["n"] == len(seen) + 2 and metrics["n_unseen"] == 2  # scored, not dropped
    assert metrics["accuracy"] < 1


def test_evaluate_a_folder_that_is_not_a_model(tiny_model, files):
    proc = cli("evaluate", str(tiny_model), "--data", str(files["test"]))
    _assert_user_error(proc, "not a domainfit model")


def test_unknown_option_is_a_usage_error(files):
    proc = cli("evaluate", str(files["folder"]), "--data", str(files["test"]), "--no-such-option")
    _assert_user_error(proc, "--no-such-option", paragraph=False)


def test_debug_shows_the_traceback(files):
    proc = cli("evaluate", str(files["folder"]), "--data", str(files["test"]), "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "not a domainfit model" in proc.stderr


# --- other tasks ---------------------------------------------------------------------------

TASK_LABELS = {"multilabel": ["card|urgent", "refund", "password|urgent"], "regression": ["1.5", "4.0", "7.5"]}
TASK_METRICS = {"multilabel": {"micro_f1": (0, 1), "subset_accuracy": (0, 1)},
                "regression": {"mae": (0, math.inf), "rmse": (0, math.inf), "r2": (-math.inf, 1),
                               "spearman": (-1, 1)}}


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_other_tasks_train_and_evaluate(task, tiny_model, tmp_path):
    lines = [f"{t},{TASK_LABELS[task][i]}" for i, texts in enumerate(INTENTS.values()) for t in texts]
    data = _write(tmp_path / "data.csv", "text,label\n" + "\n".join(lines * 3) + "\n")
    out = tmp_path / "model"
    proc = cli("train", "--data", str(data), "--output", str(out), "--model", str(tiny_model), "--task", task,
               *FAST, "--set", "training.epochs=3")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["task"] == task
    if task == "multilabel":
        assert manifest["labels"] == ["card", "password", "refund", "urgent"]

    proc = cli("evaluate", str(out), "--data", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = _strict_json(proc.stdout)
    for key, (low, high) in TASK_METRICS[task].items():
        assert isinstance(metrics[key], float) and low <= metrics[key] <= high, (key, metrics[key])


def test_importing_the_command_line_loads_no_model_library():
    """`domainfit --help` must answer fast: a bare import of the command line loads typer and
    rich, not torch or transformers (benchmarks/cli_startup.py measures the time)."""
    import subprocess
    import sys

    probe = "import sys, domainfit.cli; print(sorted(m for m in ('torch', 'transformers', 'fastapi') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_version_names_what_a_bug_report_needs_without_loading_torch():
    """`domainfit --version` and `domainfit version` print the versions and the CPU features
    that decide speed; reading them loads no model library."""
    import importlib.metadata
    import subprocess
    import sys

    from domainfit import __version__
    from domainfit.cli import main

    for argv in (["--version"], ["version"]):
        code = subprocess.run([sys.executable, "-m", "domainfit.cli", *argv], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
        assert code.returncode == 0, code.stderr
        lines = code.stdout.splitlines()
        assert lines[0] == f"domainfit {__version__}"
        assert f"torch {importlib.metadata.version('torch')}" in code.stdout
        assert "transformers" in code.stdout and "onnxruntime" in code.stdout
        assert "avx2:" in code.stdout and "avx512_bf16:" in code.stdout and "--precision auto trains in" in code.stdout
    probe = ("import sys; from domainfit.core.environment import environment; e = environment(); "
             "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules), e['python'])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert done.stdout.split()[0] == "[]" and done.stdout.split()[1] == sys.version.split()[0]
    assert main(["version", "--json"]) == 0


def test_epochs_is_a_shortcut_for_the_setting(tmp_path, tiny_model):
    from domainfit.cli import main
    from helpers import write_task_data

    data = write_task_data(tmp_path, "classification")
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--output", str(out), "--model", str(tiny_model), "--epochs", "1",
                 "--set", "training.batch_size=16"]) == 0
    config = json.loads((out / "domainfit.json").read_text(encoding="utf-8"))["config"]
    assert config["training"]["epochs"] == 1
