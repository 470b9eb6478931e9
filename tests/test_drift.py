"""Drift: the statistics on known distributions, and ``domainfit drift`` on a real (tiny)
model with files and with the prediction log."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from domainfit.evaluation.drift import decide, dominant_script, mix_test, mmd_test, psi
from domainfit.improve import TextSet, compare
from domainfit.stores import PredictionLog
from helpers import run_cli


def test_mmd_tells_shifted_vectors_from_resampled_ones():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    shifted = rng.normal(size=(200, 8)) + 0.4
    same, moved = mmd_test(a, b), mmd_test(a, shifted)
    assert same.p_value > 0.05 and moved.p_value < 0.01 and moved.effect > same.effect


def test_label_mix_script_and_the_decision_rule():
    ref = ["a"] * 50 + ["b"] * 50
    assert psi(Counter(ref), Counter(ref)) == pytest.approx(0)
    moved = mix_test("prediction_mix", ref, ["a"] * 90 + ["b"] * 10)
    assert moved.p_value < 1e-6 and moved.effect > 0.1 and "a 50.0%→90.0%" in moved.summary
    still = mix_test("prediction_mix", ref, ["a"] * 52 + ["b"] * 48)
    assert still.p_value > 0.5
    assert decide([moved, still]) and moved.drift and not still.drift
    tiny = mix_test("prediction_mix", ref * 200, ["a"] * 10300 + ["b"] * 9700)  # significant but trivial
    assert tiny.p_value < 0.01 and not decide([tiny])
    assert [dominant_script(t) for t in ("where is my card", "我要取消这个订单", "Где моя карта", "12 34")] == [
        "Latin", "Han", "Cyrillic", "none"]


def _set(labels, scores, texts, vectors):
    return TextSet("x", "test", list(labels), np.asarray(scores, dtype=float), list(texts), np.asarray(vectors))


def test_compare_runs_every_check_the_sets_allow():
    rng = np.random.default_rng(1)
    texts = [f"where is my card number {i}" for i in range(100)]
    ref = _set(["card"] * 60 + ["refund"] * 40, rng.uniform(0.6, 1, 100), texts, rng.normal(size=(100, 4)))
    same = _set(["card"] * 58 + ["refund"] * 42, rng.uniform(0.6, 1, 100), texts, rng.normal(size=(100, 4)))
    result = compare(ref, same, permutations=200)
    assert [s.name for s in result.signals] == ["embedding", "prediction_mix", "confidence", "low_confidence",
                                                "length", "script"]
    assert not result.drift
    other = _set(["refund"] * 100, rng.uniform(0.2, 0.6, 100), ["我要取消这个订单"] * 100,
                 rng.normal(size=(100, 4)) + 1)
    result = compare(ref, other, permutations=200)
    assert result.drift and {s.name for s in result.signals if s.drift} == set(
        ["embedding", "prediction_mix", "confidence", "low_confidence", "length", "script"])
    no_texts = TextSet("x", "log", ["card"] * 30, np.full(30, 0.9))
    assert [s.name for s in compare(ref, no_texts).signals] == ["prediction_mix", "confidence", "low_confidence"]


def _texts_file(path, texts):
    path.write_text("text\n" + "\n".join(texts) + "\n", encoding="utf-8")
    return path


def test_drift_command_exit_codes_report_and_prediction_log(served_models, tmp_path):
    from conftest import INTENTS

    model = served_models[0]
    english = [f"{p} {w}" for p in sum(INTENTS.values(), []) for w in ("please", "now", "today")]
    reference = _texts_file(tmp_path / "reference.csv", english)
    same = _texts_file(tmp_path / "same.csv", list(reversed(english)))
    chinese = _texts_file(tmp_path / "chinese.csv", [f"我要取消这个订单{'呀' * (i % 5)}" for i in range(36)])

    calm = run_cli("drift", str(model), "--reference", str(reference), "--current", str(same),
                   "--output", str(tmp_path / "calm"))
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "No drift found" in calm.stderr
    moved = run_cli("drift", str(model), "--reference", str(reference), "--current", str(chinese),
                    "--output", str(tmp_path / "moved"), "--json")
    assert moved.returncode == 1, moved.stdout + moved.stderr
    body = json.loads(moved.stdout)
    assert body["drift"] and {"script", "length"} <= {s["name"] for s in body["signals"] if s["drift"]}
    report = (tmp_path / "moved" / "report.md").read_text()
    assert "**Drift found**" in report and (tmp_path / "moved" / "length.png").stat().st_size > 1000
    assert json.loads((tmp_path / "moved" / "drift.json").read_text())["drift"] is True

    db = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog(db, keep_texts=True)
    log.record("r1", model.name, 1, [(t, "refund", 0.4) for t in (f"我要取消这个订单{i}" for i in range(30))])
    log.flush()
    logged = run_cli("drift", str(model), "--reference", str(reference), "--db", db, "--since", "1d",
                     "--output", str(tmp_path / "logged"), "--json")
    assert logged.returncode == 1, logged.stdout + logged.stderr
    assert json.loads(logged.stdout)["current"]["n"] == 30

    for args, message in ((["--current", str(same), "--db", db], "one of them"),
                          (["--db", db, "--served-name", "nobody"], "no predictions of model 'nobody'"),
                          (["--db", db, "--since", "last week"], "not a date"),
                          (["--current", str(tmp_path / "missing.csv")], "no such file")):
        bad = run_cli("drift", str(model), "--reference", str(reference), *args, "--output", str(tmp_path / "bad"))
        assert bad.returncode == 2 and message in bad.stdout + bad.stderr, bad.stdout + bad.stderr
        assert "Traceback" not in bad.stderr
