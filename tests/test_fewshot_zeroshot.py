"""Few-shot, zero-shot, label files, --shots and auto, on the tiny model."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import domainfit
from domainfit.data.batching import encode_texts
from domainfit.core.errors import ConfigError, DataError
from domainfit.data.labels import humanize, read_label_file
from domainfit.modeling import predict_logits
from conftest import write_intents_csv
from helpers import fast_settings, run_cli

TEXTS = ["where is my card", "refund my order please", "forgot my password"]


def _labels_csv(tmp_path, body="label,description\ncard_arrival,card has not arrived\nrefund,money back\n"
                                "password,forgot password\n"):
    path = tmp_path / "labels.csv"
    path.write_text(body, encoding="utf-8")
    return path


def _same_logits(result, path):
    loaded = domainfit.load(path)
    enc = encode_texts(loaded.tokenizer, TEXTS, None, 64)
    expected = predict_logits(result.model.eval(), enc, loaded.tokenizer.pad_token_id)
    torch.testing.assert_close(predict_logits(loaded.model, enc, loaded.tokenizer.pad_token_id), expected,
                               rtol=0, atol=1e-6)
    return loaded


@pytest.mark.parametrize("name,words", [("card_arrival", "card arrival"), ("TopUpFailed", "top up failed"),
                                        ("reverted_card_payment?", "reverted card payment"),
                                        ("beneficiary-not-allowed", "beneficiary not allowed")])
def test_humanize(name, words):
    assert humanize(name) == words


def test_label_file_rejects_duplicates_and_empty_names_with_lines(tmp_path):
    path = _labels_csv(tmp_path, "label,description\nrefund,a\n,empty\ncard,b\nrefund,again\n")
    with pytest.raises(DataError) as err:
        read_label_file(path)
    text = str(err.value)
    assert "line 3, column 'label': empty label name" in text
    assert "line 5, column 'label': duplicate label 'refund' (first on line 2)" in text


@pytest.mark.parametrize("suffix,body", [(".yaml", "- refund\n- label: card\n  description: my card\n"),
                                         (".json", '["refund", {"label": "card", "description": "my card"}]')])
def test_label_file_yaml_and_json(tmp_path, suffix, body):
    path = tmp_path / f"labels{suffix}"
    path.write_text(body, encoding="utf-8")
    specs = read_label_file(path)
    assert [(s.name, s.description) for s in specs] == [("refund", None), ("card", "my card")]


def test_label_file_without_label_column(tmp_path):
    with pytest.raises(DataError, match="no 'label' column"):
        read_label_file(_labels_csv(tmp_path, "name\nrefund\ncard\n"))


def test_zeroshot_stores_only_the_head_and_round_trips(tmp_path, tiny_model, intents_csv):
    out = tmp_path / "zs"
    result = domainfit.train(output=str(out), model=str(tiny_model), **{
        "method.name": "zeroshot", "data.labels": str(_labels_csv(tmp_path)), "data.eval": str(intents_csv)})
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["labels"] == ["card_arrival", "refund", "password"]  # the label file's order
    assert manifest["weights"] == "adapter.safetensors" and manifest["training"]["steps"] == 0
    assert set(load_file(str(out / "adapter.safetensors"))) == {"head.weight", "head.bias", "output_scale",
                                                                "output_shift"}
    assert manifest["method"]["trainable_parameters"] == 3 * 32 + 3
    assert 0 <= result.eval_metrics["accuracy"] <= 1 and (out / "report" / "report.md").is_file()
    # The head rows are the label prototypes: norm = scale, and the logits are scale × cosine.
    torch.testing.assert_close(result.model.head.weight.norm(dim=1), torch.full((3,), 20.0))
    loaded = _same_logits(result, out)
    assert loaded.predict(TEXTS)[0]["label"] in manifest["labels"]
    metrics = domainfit.evaluate(out, intents_csv)
    assert metrics["accuracy"] == pytest.approx(result.eval_metrics["accuracy"])


def test_zeroshot_self_training_fine_tunes_on_pseudo_labels(tmp_path, tiny_model, intents_csv):
    out = tmp_path / "zs-self"
    result = domainfit.train(output=str(out), model=str(tiny_model), **{
        "method.name": "zeroshot", "data.labels": str(_labels_csv(tmp_path)), "data.unlabelled": str(intents_csv),
        "method.options.per_class": 5, "method.options.confidence": 0.0, "training.epochs": 2})
    manifest = json.loads((out / "domainfit.json").read_text())
    st = manifest["method"]["self_training"]
    assert manifest["method"]["name"] == "zeroshot" and manifest["method"]["fine_tuned_with"] == "fewshot"
    assert st["texts"] == 36 and st["pseudo_labelled"] == sum(st["per_label"].values())
    assert all(n <= 5 for n in st["per_label"].values())
    assert manifest["weights"] == "model.safetensors" and manifest["data"]["unlabelled"]["rows"] == 36
    _same_logits(result, out)


def test_zeroshot_bad_combinations(tmp_path, tiny_model, intents_csv):
    with pytest.raises(ConfigError, match="--labels"):
        domainfit.train(output=str(tmp_path / "a"), model=str(tiny_model), **{"method.name": "zeroshot"})
    with pytest.raises(ConfigError, match="classification, multilabel and retrieval"):
        domainfit.train(output=str(tmp_path / "b"), model=str(tiny_model), task="regression",
                        **{"method.name": "zeroshot", "data.labels": str(_labels_csv(tmp_path))})
    with pytest.raises(ConfigError, match="backend"):
        domainfit.train(output=str(tmp_path / "c"), model=str(tiny_model), **{
            "method.name": "zeroshot", "data.labels": str(_labels_csv(tmp_path)), "method.options.backend": "nli"})
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_fewshot_prototype_head_is_the_class_means(tiny_model, intents_csv):
    from domainfit.data import load_dataset
    from domainfit.methods.fewshot import init_prototype_head
    from domainfit.modeling import DomainModel, build_encoder
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    model = DomainModel(build_encoder(str(tiny_model)), 3, normalize=True).eval()
    examples = load_dataset(intents_csv).examples
    labels = ["card_arrival", "password", "refund"]
    init_prototype_head(model, tok, examples, labels, False, 20.0, 64)
    enc = encode_texts(tok, [e.text for e in examples], None, 64)
    vectors = F.normalize(predict_logits(model, enc, tok.pad_token_id, embeddings=True), dim=-1)
    for c, name in enumerate(labels):
        mean = F.normalize(vectors[[i for i, e in enumerate(examples) if e.label == name]].mean(0), dim=0)
        torch.testing.assert_close(model.head.weight[c], 20.0 * mean, rtol=1e-4, atol=1e-5)
    # So the untrained model is a nearest-class-mean classifier.
    cosine = vectors @ F.normalize(model.head.weight, dim=-1).T
    logits = predict_logits(model, enc, tok.pad_token_id)
    assert torch.equal(logits.argmax(1), cosine.argmax(1))


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_fewshot_trains_every_example_without_a_split(tmp_path, tiny_model, task):
    rows = [{"text": t, "label": {"classification": lab, "multilabel": f"{lab}|x" if i % 2 else lab,
                                  "regression": str(float(len(lab)))}[task]}
            for i, (t, lab) in enumerate([("where is my card", "card"), ("card not here", "card"),
                                          ("refund please", "refund"), ("money back", "refund")])]
    out = tmp_path / "fs"
    result = domainfit.train(output=str(out), model=str(tiny_model), task=task, train_data=rows,
                             **fast_settings(**{"method.name": "fewshot", "training.epochs": 2}))
    manifest = result.manifest
    assert manifest["split"]["train_rows"] == 4 and manifest["split"]["validation_rows"] == 0
    assert manifest["model"]["normalize"] is True and manifest["config"]["training"]["label_smoothing"] == 0.0
    # nothing held out to score: the report folder holds the model card only
    assert manifest["metrics"] == {} and [p.name for p in (out / "report").iterdir()] == ["model_card.md"]
    _same_logits(result, out)


def test_fewshot_gives_a_handful_of_examples_several_steps_and_few_classes_a_contrastive_phase(tmp_path, tiny_model):
    from domainfit.methods import get_method
    from domainfit.methods.fewshot import FewshotSettings, contrastive_epochs

    fewshot, full = get_method("fewshot"), get_method("full")
    assert fewshot.batch_size_for(27, 32) == 8  # 3 classes x 8 shots + 3 names: 4 steps a pass, not 1
    assert fewshot.batch_size_for(51, 32) == 13 and fewshot.batch_size_for(693, 32) == 32  # Banking77 8-shot
    assert fewshot.batch_size_for(20, 4) == 4  # never larger than asked
    assert fewshot.batch_size_for(27, 32, accumulation=3) == 9  # a multiple of the accumulation steps
    assert full.batch_size_for(27, 32) == 32
    assert contrastive_epochs(FewshotSettings(), 3) == 20 and contrastive_epochs(FewshotSettings(), 77) == 0
    assert contrastive_epochs(FewshotSettings(contrastive_epochs=0), 3) == 0
    rows = [{"text": f"{word} {n}", "label": label} for n in range(6)
            for word, label in (("card", "card"), ("refund", "refund"), ("password", "password"))]
    result = domainfit.train(output=str(tmp_path / "fs"), model=str(tiny_model), train_data=rows,
                             **fast_settings(**{"method.name": "fewshot", "training.epochs": 2,
                                                "training.batch_size": 32}))
    # 18 rows + 3 label names in batches of 8: 3 steps per pass
    assert result.manifest["config"]["training"]["batch_size"] == 8 and result.state.global_step == 6


def test_shots_larger_than_a_class_says_so_and_uses_all_of_it(tmp_path, tiny_model):
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "where is my card,card\n" * 1 + "".join(
        f"refund {w},refund\n" for w in ["please", "now", "money back", "order", "help"]) + "".join(
        f"password {w},password\n" for w in ["reset", "forgot", "login", "help", "now"]), encoding="utf-8")
    result = domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), **fast_settings(**{
        "data.train": str(data), "data.shots": 3, "method.name": "fewshot", "training.epochs": 1}))
    assert result.manifest["split"]["train_rows"] == 1 + 3 + 3 and result.manifest["split"]["shots"] == 3
    assert any("--shots 3 is more than 1 class(es) have" in w and "card (1)" in w
               for w in result.manifest["warnings"])


def test_auto_picks_by_data_and_budget(tmp_path, tiny_model):
    few = write_intents_csv(tmp_path / "few.csv", per_class=6)
    r = domainfit.train(output=str(tmp_path / "a"), model=str(tiny_model), **fast_settings(**{
        "data.train": str(few), "method.name": "auto", "training.epochs": 1}))
    assert r.manifest["method"]["name"] == "fewshot" and "median 6 per class" in r.manifest["method"]["auto"]["reason"]

    from domainfit.run.auto import choose_method
    from domainfit.core.config import load_config
    from domainfit.data import load_dataset
    from domainfit.modeling import resolve_model
    from domainfit.tasks import get_task

    many = load_dataset(write_intents_csv(tmp_path / "many.csv", per_class=40)).examples
    base = resolve_model(str(tiny_model))
    task = get_task("classification")
    chosen = choose_method(load_config(None), task, many, base)
    assert chosen.method == "full" and "s estimated on this machine" in chosen.reason and "about 0" not in chosen.reason
    from domainfit.run.auto import duration, estimate_seconds
    assert [duration(m) for m in (0.01, 0.5, 2.345, 42.4)] == ["about 5 s", "about 30 s", "about 2.3 min",
                                                               "about 42 min"]
    # more data, more epochs or fp32 take longer; a fixed cost keeps a tiny run above zero
    assert 0 < estimate_seconds(10, 1, 22.7e6) < estimate_seconds(1000, 1, 22.7e6) < estimate_seconds(1000, 3, 22.7e6)
    assert estimate_seconds(1000, 3, 22.7e6, bf16=False) > estimate_seconds(1000, 3, 22.7e6)
    tight = choose_method(load_config(None, **{"method.budget_minutes": 1e-5}), task, many, base)
    assert tight.method == "adapter" and tight.epochs is not None and tight.epochs < 10
    assert "budget" in tight.reason


@pytest.mark.integration
def test_cli_zeroshot_and_method_errors(tmp_path, tiny_model):
    labels = _labels_csv(tmp_path)
    done = run_cli("train", "--method", "zeroshot", "--labels", str(labels), "--model", str(tiny_model),
                   "--output", str(tmp_path / "zs"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "zs" / "domainfit.json").is_file()
    bad = run_cli("train", "--method", "nope", "--data", str(labels), "--model", str(tiny_model),
                  "--output", str(tmp_path / "x"))
    assert bad.returncode == 2 and "Unknown method 'nope'" in bad.stderr and "fewshot" in bad.stderr
    missing = run_cli("train", "--method", "zeroshot", "--model", str(tiny_model), "--output", str(tmp_path / "y"))
    assert missing.returncode == 2 and "--labels" in missing.stderr and "Traceback" not in missing.stderr


def test_lm_backend_scores_each_label_as_the_answer(tmp_path, tiny_lm, intents_csv):
    """White-box at the end: the scorer's private raw scores and prompt are compared with
    scoring each whole sequence by hand (the cached-prompt shortcut must not change them)."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lm"
    result = domainfit.train(output=str(out), **{
        "method.name": "zeroshot", "data.labels": str(_labels_csv(tmp_path)), "data.eval": str(intents_csv),
        "method.options.backend": "lm", "method.options.lm_model": str(tiny_lm)})
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["model"]["kind"] == "lm-label-scorer" and manifest["method"]["backend"] == "lm"
    assert 0 <= result.eval_metrics["accuracy"] <= 1 and (out / "report" / "report.md").is_file()
    loaded = domainfit.load(out)
    preds = loaded.predict(TEXTS)
    assert [p["label"] in manifest["labels"] for p in preds] == [True] * 3
    # The cached-prompt batch scoring equals scoring each full sequence on its own.
    scorer = loaded.model
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_lm)).eval()
    raw = scorer._raw([TEXTS[0]])[0]
    prompt = scorer._prompt(TEXTS[0])
    for i, answer in enumerate(scorer.answers):
        with torch.no_grad():
            logp = lm(torch.tensor([prompt + answer])).logits[0].log_softmax(-1)
        expected = sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(answer)) / len(answer)
        assert raw[i].item() == pytest.approx(expected.item(), abs=1e-4)
    probs = loaded.scores(TEXTS)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))


def test_lm_backend_refuses_what_it_cannot_do(tmp_path, tiny_lm):
    with pytest.raises(ConfigError, match="classification only"):
        domainfit.train(output=str(tmp_path / "m"), task="multilabel", **{
            "method.name": "zeroshot", "data.labels": str(_labels_csv(tmp_path)),
            "method.options.backend": "lm", "method.options.lm_model": str(tiny_lm)})
