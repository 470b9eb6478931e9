"""Active learning picks: each strategy on known probabilities and vectors, and
``domainfit select`` / ``import-labels`` on a real (tiny) model with Label Studio files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from domainfit.core.errors import ConfigError
from domainfit.improve.select import choose, read_labelstudio
from helpers import run_cli


def _clusters():
    """Three tight clusters of vectors (10 each) and probabilities that make cluster 0 the
    most uncertain."""
    rng = np.random.default_rng(0)
    centres = np.eye(3)
    vectors = np.concatenate([c + 0.01 * rng.normal(size=(10, 3)) for c in centres])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    probs = np.concatenate([np.tile([0.4, 0.35, 0.25], (10, 1)), np.tile([0.9, 0.05, 0.05], (10, 1)),
                            np.tile([0.05, 0.05, 0.9], (10, 1))])
    probs[3] = [0.34, 0.33, 0.33]  # the most uncertain of all
    return probs, vectors


def test_strategies():
    probs, vectors = _clusters()
    assert choose(probs, None, 1, "margin") == [3]
    assert choose(probs, None, 1, "entropy") == [3]
    assert set(choose(probs, None, 10, "margin")) == set(range(10))
    covered = choose(probs, vectors, 3, "diverse")
    assert sorted(r // 10 for r in covered) == [0, 1, 2]  # one from each cluster
    away = choose(probs, vectors, 2, "diverse", labelled_vectors=vectors[:1])  # cluster 0 is labelled
    assert sorted(r // 10 for r in away) == [1, 2]
    hybrid = choose(probs, vectors, 2, "hybrid")
    assert len(set(hybrid)) == 2 and all(r < 10 for r in hybrid)  # the shortlist is cluster 0's
    # Near-repeats of one confusing text are the 4 most uncertain; margin spends the whole
    # batch on them, hybrid takes the most uncertain repeat and the best of the other group.
    repeats = np.concatenate([np.tile([1.0, 0, 0], (4, 1)), np.tile([0, 1.0, 0], (2, 1))])
    repeats += 0.01 * np.random.default_rng(1).normal(size=repeats.shape)
    repeats /= np.linalg.norm(repeats, axis=1, keepdims=True)
    uncertain = np.array([[0.5, 0.5, 0], [0.51, 0.49, 0], [0.52, 0.48, 0], [0.53, 0.47, 0],
                          [0.6, 0.4, 0], [0.7, 0.3, 0]])
    assert choose(uncertain, repeats, 2, "margin") == [0, 1]
    assert choose(uncertain, repeats, 2, "hybrid") == [0, 4]
    assert 3 not in choose(probs, None, 5, "margin", eligible=np.array([r for r in range(30) if r != 3]))
    with pytest.raises(ConfigError, match="larger than the 2 texts"):
        choose(probs, None, 3, "margin", eligible=np.array([0, 1]))
    with pytest.raises(ConfigError, match="choose one of"):
        choose(probs, None, 1, "random")


def test_select_and_import_labels_commands(served_models, tmp_path):
    pool = tmp_path / "pool.csv"
    texts = ["where is my card", "Where is  my card", "money back please", "reset password", "card refund",
             "login broken", "refund now", "password card money", "my card", "help"]
    pool.write_text("text\n" + "\n".join(texts) + "\n", encoding="utf-8")
    labelled = tmp_path / "train.csv"
    labelled.write_text("text,label\nreset password,password\n", encoding="utf-8")
    out = tmp_path / "to_label.csv"
    done = run_cli("select", str(served_models[0]), "--pool", str(pool), "--budget", "8", "--strategy", "hybrid",
                   "--exclude", str(labelled), "--output", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out, encoding="utf-8") as fh:
        picked = list(csv.DictReader(fh))
    assert list(picked[0]) == ["line", "text", "label", "guess", "score", "rank"]
    chosen = [r["text"] for r in picked]
    assert len(chosen) == 8 and "reset password" not in chosen  # already labelled
    assert not {"where is my card", "Where is  my card"} <= set(chosen)  # a repeat is picked once
    assert {r["guess"] for r in picked} <= {"card", "refund", "password"}
    too_many = run_cli("select", str(served_models[0]), "--pool", str(pool), "--budget", "9", "--exclude",
                       str(labelled), "--output", str(tmp_path / "x.csv"))
    assert too_many.returncode == 2 and "larger than the 8 texts" in too_many.stdout + too_many.stderr

    tasks_file = tmp_path / "tasks.json"
    done = run_cli("select", str(served_models[0]), "--pool", str(pool), "--budget", "3", "--strategy", "margin",
                   "--output", str(tasks_file))
    assert done.returncode == 0, done.stderr
    tasks = json.loads(tasks_file.read_text())
    assert len(tasks) == 3 and tasks[0]["predictions"][0]["result"][0]["value"]["choices"][0] in {
        "card", "refund", "password"}
    # What Label Studio exports after a person labelled two of the three tasks.
    tasks[0]["annotations"] = [{"result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                            "value": {"choices": ["refund"]}}]}]
    tasks[1]["annotations"] = [{"was_cancelled": True, "result": [{"value": {"choices": ["card"]}}]}]
    tasks[2]["annotations"] = [{"result": [{"value": {"choices": ["password"]}}]}]
    tasks_file.write_text(json.dumps(tasks))
    assert [r["label"] for r in read_labelstudio(tasks_file)] == ["refund", "password"]
    done = run_cli("import-labels", str(tasks_file), "--output", str(tmp_path / "labelled.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "labelled.csv").read_text().splitlines()[0] == "text,label"
    assert len((tmp_path / "labelled.csv").read_text().splitlines()) == 3
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    bad = run_cli("import-labels", str(tmp_path / "bad.json"), "--output", str(tmp_path / "y.csv"))
    assert bad.returncode == 2 and "not a Label Studio JSON export" in bad.stdout + bad.stderr
