"""Explanations: a score per word for each task, faithful to the model's own probabilities,
through the library, the command line and the server; the evidence index of training texts."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

import domainfit
from domainfit.core.errors import ConfigError, DomainfitError
from domainfit.inference.explain import METHODS, supported_methods
from domainfit.serving import ServeSettings, create_app
from helpers import fast_settings, run_cli, running_app, write_ner_data, write_pair_data, write_task_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """Tiny trained models per task (a few seconds each)."""
    root = tmp_path_factory.mktemp("explain")
    out = {}
    for task in ("classification", "multilabel", "regression"):
        out[task] = root / task
        domainfit.train(output=str(out[task]), model=str(tiny_model), task=task,
                        **fast_settings(**{"data.train": str(write_task_data(root, task))}))
    out["token"] = root / "ner"
    domainfit.train(output=str(out["token"]), model=str(tiny_model), task="token-classification",
                    **fast_settings(**{"data.train": str(write_ner_data(root, copies=2)), "training.epochs": 15}))
    out["pair"] = root / "pair"
    domainfit.train(output=str(out["pair"]), model=str(tiny_model), task="pair",
                    **fast_settings(**{"data.train": str(write_pair_data(root)), "data.text_column": "a",
                                       "data.text_pair_column": "b"}))
    return out


def _check_words(text: str, words: list[dict]) -> None:
    assert words, "no words"
    for w in words:
        assert text[w["start"]:w["end"]] == w["word"]
        assert isinstance(w["score"], float)


@pytest.mark.parametrize("method", METHODS)
def test_classification_words_and_faithfulness(trained, method):
    model = domainfit.load(trained["classification"])
    text = "refund my order"
    record = model.explain(text, method=method)[0]
    e = record["explanation"]
    assert e["method"] == method and e["target"] == record["label"] == "refund"
    assert [w["word"] for w in e["words"]] == text.split()
    _check_words(text, e["words"])
    proba = model.predict_proba([text])[0]
    assert e["target_score"] == pytest.approx(float(proba[model.labels.index("refund")]), abs=1e-5)
    # The word the label rests on ranks first, for every method.
    assert max(e["words"], key=lambda w: w["score"])["word"] == "refund"
    if method == "occlusion":  # exactly p(text) - p(text without the word)
        without = model.predict_proba(["my order"])[0][model.labels.index("refund")]
        refund = next(w for w in e["words"] if w["word"] == "refund")
        assert refund["score"] == pytest.approx(e["target_score"] - float(without), abs=1e-5)


def test_deletion_scores_words_after_the_words_already_taken_out(trained):
    """Four words: round one is leave-one-out, round two takes the best word out first and
    scores every other word by what removing it then costs; the scores rank the words in the
    order they were taken out (a later, larger drop is lowered to just below the one before)."""
    model = domainfit.load(trained["classification"])
    text = "please refund my order"
    e = model.explain(text, method="deletion")[0]["explanation"]
    column = model.labels.index(e["target"])
    occlusion = model.explain(text, method="occlusion", target=e["target"])[0]["explanation"]["words"]
    first = max(range(4), key=lambda i: occlusion[i]["score"])
    words = text.split()
    rest = [w for i, w in enumerate(words) if i != first]
    p_rest = model.predict_proba([" ".join(rest)])[0][column]
    drops = {i: float(p_rest - model.predict_proba([" ".join(x for x in rest if x != w)])[0][column])
             for i, w in enumerate(words) if i != first}
    ranked = [first] + sorted(drops, key=lambda i: -drops[i])  # taken out: first, then the best of round two
    expected, previous = {}, float("inf")
    for i in ranked:
        own = occlusion[first]["score"] if i == first else drops[i]
        expected[i] = previous = min(round(own, 6), round(previous - 1e-6, 6))
    for i in range(4):
        assert e["words"][i]["score"] == pytest.approx(expected[i], abs=1e-5)
    assert sorted(range(4), key=lambda i: -e["words"][i]["score"]) == ranked


def test_integrated_gradients_add_up_to_the_change_from_the_baseline(trained):
    """Completeness: the word scores sum to p(text) - p(baseline) (all word pieces padded)."""
    import torch

    model = domainfit.load(trained["classification"])
    text = "where is my card"
    e = model.explain(text, method="integrated-gradients", steps=256)[0]["explanation"]
    inner = model.model
    enc = model.tokenizer(text, return_tensors="pt")
    ids = enc["input_ids"].clone()
    ids[0, 1:-1] = model.tokenizer.pad_token_id
    with torch.no_grad():
        embeds = inner.encoder.get_input_embeddings()(ids)
        base = inner.head_logits(inner.embed(None, enc["attention_mask"], inputs_embeds=embeds)).softmax(-1)
    column = model.labels.index(e["target"])
    total = sum(w["score"] for w in e["words"])
    assert total == pytest.approx(e["target_score"] - float(base[0, column]), abs=0.01)


def test_target_multilabel_regression_pairs(trained):
    model = domainfit.load(trained["classification"])
    e = model.explain("where is my card", target="password")[0]["explanation"]
    assert e["target"] == "password"
    card = model.explain("where is my card", target="card")[0]["explanation"]
    assert e["target_score"] < card["target_score"]

    multi = domainfit.load(trained["multilabel"])
    record = multi.explain("forgot my password", target="urgent")[0]
    assert record["explanation"]["target"] == "urgent"
    assert record["explanation"]["target_score"] == pytest.approx(
        float(multi.predict_proba(["forgot my password"])[0][multi.labels.index("urgent")]), abs=1e-5)

    reg = domainfit.load(trained["regression"])
    for method in METHODS:
        e = reg.explain("reset password", method=method)[0]["explanation"]
        assert e["target_score"] == pytest.approx(reg.predict(["reset password"])[0]["score"], abs=1e-4)
        _check_words("reset password", e["words"])

    pair = domainfit.load(trained["pair"])
    record = pair.explain(["where is my card"], pairs=["the card arrives in a week"], method="integrated-gradients")[0]
    words = record["explanation"]["words"]
    assert {w["part"] for w in words} == {"text", "pair"}
    assert [w["word"] for w in words if w["part"] == "pair"] == "the card arrives in a week".split()
    assert all("the card arrives in a week"[w["start"]:w["end"]] == w["word"] for w in words if w["part"] == "pair")


def test_entities_are_explained_one_by_one(trained):
    model = domainfit.load(trained["token"])
    assert supported_methods(model) == ("occlusion",)
    text = "anna lives in paris"
    record = model.explain(text)[0]
    found = {e["label"]: e for e in record["entities"]}
    assert set(found) == {"PER", "LOC"}
    for entity in found.values():
        e = entity["explanation"]
        assert e["target"] == entity["label"] and e["entity"]["text"] == entity["text"]
        _check_words(text, e["words"])
        assert e["target_score"] == pytest.approx(entity["score"], abs=1e-5)
        # hiding the top word (behind the unknown token) lowers the entity's confidence or loses it
        top = max(range(len(e["words"])), key=lambda i: e["words"][i]["score"])
        assert e["words"][top]["score"] > 0
        hidden = text.split()
        hidden[top] = model.tokenizer.unk_token
        after = [x for x in model.predict_tokens([hidden])[0]["entities"] if x["start"] == entity["start"]
                 and x["label"] == entity["label"]]
        assert not after or after[0]["score"] < entity["score"]
    only = model.explain(text, target="LOC")[0]
    assert [e["label"] for e in only["entities"]] == ["LOC"] and only["explanation"]["target"] == "LOC"
    with pytest.raises(ConfigError, match="not a label"):
        model.explain(text, target="B-LOC")
    with pytest.raises(ConfigError, match="occlusion"):
        model.explain(text, method="integrated-gradients")


def test_bad_input_and_long_texts(trained):
    model = domainfit.load(trained["classification"])
    with pytest.raises(ConfigError, match="empty"):
        model.explain("   ")
    with pytest.raises(ConfigError, match="not a label"):
        model.explain("where is my card", target="nope")
    with pytest.raises(ConfigError, match="choose auto"):
        model.explain("where is my card", method="shap")
    long = " ".join(["where is my card"] * 40)  # 160 words; the tiny model reads 64 pieces
    for method in ("occlusion", "integrated-gradients"):
        e = model.explain(long, method=method)[0]["explanation"]
        assert e["truncated"] and "maximum" in e["note"]
        assert 50 <= len(e["words"]) <= 64 and e["words"][-1]["end"] < len(long)


@pytest.mark.integration
def test_evidence_index(trained, tmp_path, tiny_model):
    model = domainfit.load(trained["classification"])
    manifest = model.manifest
    assert manifest["evidence"]["rows"] == 9  # the 9 distinct training texts (each repeated 4 times)
    assert (trained["classification"] / "evidence.safetensors").is_file()
    records = model.add_evidence(model.explain("where is my card"), k=2)
    hits = records[0]["evidence"]
    assert len(hits) == 2 and hits[0]["text"] == "where is my card" and hits[0]["label"] == "card"
    assert hits[0]["similarity"] == pytest.approx(1.0, abs=0.01) and hits[0]["similarity"] >= hits[1]["similarity"]
    private = tmp_path / "private"
    done = run_cli("train", "--data", str(write_task_data(tmp_path, "classification")), "--model", str(tiny_model),
                   "--output", str(private), "--no-evidence-index", "--epochs", "1")
    assert done.returncode == 0, done.stderr
    assert not (private / "evidence.jsonl").exists() and "evidence" not in json.loads(
        (private / "domainfit.json").read_text())
    assert "evidence" not in domainfit.load(private).add_evidence([{"text": "where is my card"}])[0]


@pytest.mark.integration
def test_cli_explain_and_predict_explain(trained, tmp_path):
    folder = str(trained["classification"])
    done = run_cli("explain", folder, "i want a refund", "reset password", "--json", "--evidence", "1")
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)
    assert [i["label"] for i in items] == ["refund", "password"]
    e = items[0]["explanation"]
    assert set(e) >= {"method", "target", "words"} and e["target"] == "refund"
    assert set(e["words"][0]) >= {"word", "start", "end", "score"} and len(items[0]["evidence"]) == 1
    text = run_cli("explain", folder, "i want a refund")
    assert text.returncode == 0 and "refund" in text.stdout
    bad = run_cli("explain", folder, "i want a refund", "--target", "nope")
    assert bad.returncode == 2 and "not a label" in bad.stderr and "Traceback" not in bad.stderr

    data = tmp_path / "in.csv"
    data.write_text("text\ni want a refund\nwhere is my card\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = run_cli("predict", folder, "--data", str(data), "--output", str(out), "--explain", "--method", "occlusion")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["explanation"]["target"] for r in rows] == [r["label"] for r in rows] == ["refund", "card"]
    assert all(r["explanation"]["method"] == "occlusion" for r in rows)
    csv_out = run_cli("predict", folder, "--data", str(data), "--output", str(tmp_path / "o.csv"), "--explain")
    assert csv_out.returncode == 2 and ".jsonl" in csv_out.stderr


@pytest.mark.integration
def test_server_explains_on_request(trained):
    folder = trained["classification"]
    with running_app(create_app(folder, ServeSettings())) as url:
        predict = f"{url}/v1/models/{folder.name}/predict"
        plain = httpx.post(predict, json={"texts": ["i want a refund"]}).json()["predictions"][0]
        assert "explanation" not in plain
        r = httpx.post(predict, json={"texts": ["i want a refund", "where is my card"], "explain": True,
                                      "method": "integrated-gradients"})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert [p["explanation"]["target"] for p in preds] == ["refund", "card"]
        assert preds[0]["explanation"]["method"] == "integrated-gradients"
        local = domainfit.load(folder).explain("i want a refund", method="integrated-gradients")[0]["explanation"]
        assert np.allclose([w["score"] for w in preds[0]["explanation"]["words"]],
                           [w["score"] for w in local["words"]], atol=1e-4)
        bad = httpx.post(predict, json={"texts": ["i want a refund"], "explain": True, "target": "nope"})
        assert bad.status_code == 422 and "not a label" in bad.json()["error"]["message"]
        bad = httpx.post(predict, json={"texts": ["i want a refund"], "explain": True, "method": "shap"})
        assert bad.status_code == 422


def test_methods_an_artifact_supports(trained):
    model = domainfit.load(trained["classification"])
    assert supported_methods(model) == METHODS
    with pytest.raises(DomainfitError):
        model.explain("where is my card", method="nonsense")


def test_onnx_artifacts_are_explained_by_removing_words(trained, tmp_path):
    from domainfit.export import export_model

    export_model(trained["classification"], tmp_path / "onnx")
    exported, original = domainfit.load(tmp_path / "onnx"), domainfit.load(trained["classification"])
    assert supported_methods(exported) == ("occlusion", "deletion") and "evidence" not in exported.manifest
    e = exported.explain("refund my order")[0]["explanation"]
    assert e["method"] == "deletion"
    reference = original.explain("refund my order", method="deletion")[0]["explanation"]
    assert np.allclose([w["score"] for w in e["words"]], [w["score"] for w in reference["words"]], atol=1e-4)
    occlusion = exported.explain("refund my order", method="occlusion")[0]["explanation"]
    reference = original.explain("refund my order", method="occlusion")[0]["explanation"]
    assert np.allclose([w["score"] for w in occlusion["words"]], [w["score"] for w in reference["words"]], atol=1e-4)
    with pytest.raises(ConfigError, match="ONNX"):
        exported.explain("refund my order", method="integrated-gradients")


def test_auto_explains_long_texts_by_occlusion(trained, monkeypatch):
    """auto is greedy deletion, whose cost grows faster than the text; past AUTO_DELETION_WORDS
    words it runs occlusion's single round instead, and says so."""
    from domainfit.inference import explain as module

    model = domainfit.load(trained["classification"])
    assert model.explain("refund my order")[0]["explanation"]["method"] == "deletion"
    monkeypatch.setattr(module, "AUTO_DELETION_WORDS", 3)
    short, long = model.explain(["refund my order", "please refund my order"])
    assert short["explanation"]["method"] == "deletion" and long["explanation"]["method"] == "occlusion"
    reference = model.explain("please refund my order", method="occlusion")[0]["explanation"]
    assert long["explanation"]["words"] == reference["words"]
    assert model.explain("please refund my order", method="deletion")[0]["explanation"]["method"] == "deletion"
