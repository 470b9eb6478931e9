"""The improvement loop end to end: a server serves v1 from a registry, corrections are
posted to /v1/feedback, ``domainfit improve`` retrains, gates and promotes v2, and the
running server answers with v2 and gets the corrected texts right; a run with nothing new
does nothing; deliberately wrong corrections make a worse candidate, which is refused."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from domainfit.serving import ServeSettings, create_app
from domainfit.stores import Registry
from helpers import run_cli, running_app, write_task_data

pytestmark = pytest.mark.integration

# Texts of the three intents that the served model has not seen (words of the tiny
# tokenizer's vocabulary), with their right labels.
NEW = [("card lost", "card"), ("stolen card help", "card"), ("cancel my order", "refund"),
       ("refund payment fee", "refund"), ("pin blocked", "password"), ("login failed", "password")]


def _recipe(tmp_path, db):
    golden = tmp_path / "golden.csv"
    rows = [(t, lab) for t, lab in NEW] * 2 + [
        ("where is my card", "card"), ("card not arrived yet", "card"), ("refund my order", "refund"),
        ("money back please", "refund"), ("forgot my password", "password"), ("reset password", "password")]
    golden.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows), encoding="utf-8")
    recipe = tmp_path / "improve.yaml"
    recipe.write_text(f"model: {tmp_path / 'registry' / 'intents'}\nfeedback:\n  db: {db}\ngolden: {golden}\n"
                      f"retrain:\n  epochs: 20\naudit:\n  folds: 3\nwork: {tmp_path / 'work'}\n"
                      # The tiny test models say about 0.5 for answers that are all right, so
                      # the calibration rule (tests/test_gate.py) is left out here.
                      "gate:\n  ece_tolerance: 1.0\n", encoding="utf-8")
    return recipe


def test_feedback_to_promotion_and_a_refusal(served_models, tmp_path):
    db = f"sqlite:///{tmp_path / 'feedback.db'}"
    root = tmp_path / "registry"
    Registry(root).add("intents", served_models[0], stage="production")
    recipe = _recipe(tmp_path, db)
    settings = ServeSettings(db_url=db, api_key="k", poll_seconds=0.2)
    with running_app(create_app(root, settings)) as url:
        predict = f"{url}/v1/models/intents/predict"
        before = httpx.post(predict, json={"texts": [t for t, _ in NEW]}).json()
        assert before["version"] == 1
        for _ in range(3):  # three people correct each answer
            for (text, label), answer in zip(NEW, before["predictions"]):
                r = httpx.post(f"{url}/v1/feedback", json={"text": text, "predicted": answer["label"],
                                                           "correct_label": label, "model": "intents", "version": 1})
                assert r.status_code == 200, r.text
        unknown = httpx.post(f"{url}/v1/feedback", json={"text": "x", "correct_label": "loans", "model": "intents"})
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_label"
        nobody = httpx.post(f"{url}/v1/feedback", json={"text": "x", "correct_label": "card", "model": "nobody"})
        assert nobody.status_code == 404

        done = run_cli("improve", str(recipe), "--json", timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        record = json.loads(done.stdout[done.stdout.index("{"):])
        assert record["steps"]["gate"]["passed"] and record["steps"]["promote"]["version"] == 2
        assert record["steps"]["export"]["rows"] == 18
        deadline = time.monotonic() + 20
        while (after := httpx.post(predict, json={"texts": [t for t, _ in NEW]}).json())["version"] != 2:
            assert time.monotonic() < deadline, "the server did not pick up version 2"
            time.sleep(0.2)
        assert [p["label"] for p in after["predictions"]] == [label for _, label in NEW]
        history = Registry(root).history("intents")[-1]
        assert history["version"] == 2 and history["reason"].startswith("gate passed")

        again = run_cli("improve", str(recipe))
        assert again.returncode == 0 and "Nothing new" in again.stderr and Registry(root).production("intents")[0] == 2

        for _ in range(4):  # wrong corrections: most card texts are "refund"
            for text in ("where is my card", "card not arrived yet", "card lost", "stolen card help"):
                httpx.post(f"{url}/v1/feedback", json={"text": text, "correct_label": "refund", "model": "intents"})
        worse = run_cli("improve", str(recipe), "--json", timeout=900)
        assert worse.returncode == 1, worse.stdout[-3000:] + worse.stderr[-3000:]
        record = json.loads(worse.stdout[worse.stdout.index("{"):])
        assert record["steps"]["gate"]["passed"] is False and record["steps"]["promote"]["version"] is None
        assert Registry(root).production("intents")[0] == 2
        assert httpx.post(predict, json={"texts": ["where is my card"]}).json()["version"] == 2


def test_improve_bad_recipes(tmp_path):
    (tmp_path / "r.yaml").write_text("model: reg/x\nfeedback: {db: 'sqlite://'}\ngolden: g.csv\ncolour: red\n")
    bad = run_cli("improve", str(tmp_path / "r.yaml"))
    assert bad.returncode == 2 and "unknown key(s) colour" in bad.stdout + bad.stderr
    (tmp_path / "g.csv").write_text("text,label\na,b\n")
    (tmp_path / "r.yaml").write_text("model: reg/x\nfeedback: {db: 'sqlite://'}\ngolden: g.csv\n")
    missing = run_cli("improve", str(tmp_path / "r.yaml"))
    assert missing.returncode == 2 and "no model named 'x'" in missing.stdout + missing.stderr
