"""The label audit: confident learning on known probabilities, and ``domainfit audit`` on a
real (tiny) encoder with flipped labels planted in the file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from domainfit.core.errors import ConfigError
from domainfit.improve.audit import audit, confident_learning, near_duplicates
from helpers import run_cli


def test_confident_learning_flags_rows_the_probabilities_contradict():
    rng = np.random.default_rng(0)
    n, k = 300, 3
    true = np.repeat(np.arange(k), n // k)
    probs = np.full((n, k), 0.05)
    probs[np.arange(n), true] = 0.9
    probs += rng.uniform(0, 0.05, size=probs.shape)
    probs /= probs.sum(1, keepdims=True)
    given = true.copy()
    flipped = rng.choice(n, 30, replace=False)
    given[flipped] = (true[flipped] + 1) % k
    mask, quality = confident_learning(given, probs)
    assert set(np.flatnonzero(mask)) == set(flipped)
    assert quality[flipped].max() < quality[~np.isin(np.arange(n), flipped)].min()
    clean_mask, _ = confident_learning(true, probs)
    assert not clean_mask.any()


def test_near_duplicates_by_text_and_by_vector():
    texts = ["Where is my card", "where  is my CARD", "refund please", "money back"]
    labels = ["card", "refund", "refund", "card"]
    vectors = np.array([[1, 0], [1, 0], [0, 1], [0.1, 0.995]])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = {(d["a"], d["b"]) for d in near_duplicates(texts, labels, vectors, threshold=0.99)}
    assert found == {(0, 1), (2, 3)}


def _planted(path):
    groups = {"card": ["where is my card", "card not arrived yet", "when will my card arrive"],
              "refund": ["refund my order", "money back please", "i want a refund"],
              "password": ["forgot my password", "reset password", "can not login"]}
    rows = [(t, label) for label, texts in groups.items() for t in texts for _ in range(6)]
    rows[0] = (rows[0][0], "refund")      # "where is my card" once labelled refund
    rows[25] = (rows[25][0], "password")  # a refund text labelled password
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8")
    return path, {2, 27}  # their file lines (the header is line 1)


def test_audit_command_finds_planted_flips(tiny_model, tmp_path):
    data, planted = _planted(tmp_path / "train.csv")
    done = run_cli("audit", "--data", str(data), "--output", str(tmp_path / "audit"), "--model", str(tiny_model),
                   "--folds", "3", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == 54 and summary["flagged"] >= 2
    with open(tmp_path / "audit" / "label_issues.csv", encoding="utf-8") as fh:
        issues = list(csv.DictReader(fh))
    assert list(issues[0]) == ["line", "text", "given_label", "suggested_label", "score"]
    by_line = {int(r["line"]): r for r in issues}
    assert planted <= set(by_line)
    assert by_line[2]["given_label"] == "refund" and by_line[2]["suggested_label"] == "card"
    assert [float(r["score"]) for r in issues] == sorted(float(r["score"]) for r in issues)
    with open(tmp_path / "audit" / "near_duplicates.csv", encoding="utf-8") as fh:
        pairs = {(int(r["line_a"]), int(r["line_b"])) for r in csv.DictReader(fh)}
    assert any(2 in p for p in pairs) and any(27 in p for p in pairs)
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["flagged"] == summary["flagged"]


def test_audit_bad_input(tiny_model, tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("text,label\nhello,a\nhi,a\n")
    with pytest.raises(ConfigError, match="at least two"):
        audit(one, tmp_path / "out", model=str(tiny_model))
    (tmp_path / "nolabel.csv").write_text("text\nhello\n")
    with pytest.raises(ConfigError, match="no column 'label'"):
        audit(tmp_path / "nolabel.csv", tmp_path / "out", model=str(tiny_model))
    bad = run_cli("audit", "--data", str(one), "--output", str(tmp_path / "o"), "--mode", "slow")
    assert bad.returncode == 2 and "choose fast or full" in bad.stdout + bad.stderr
    assert not (tmp_path / "out").exists()
