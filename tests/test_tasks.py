"""Token classification, sentence pairs and retrieval: data, metrics, training, artifacts, search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import domainfit
from domainfit.data import load_dataset
from domainfit.data.tokens import check_bio, entities_from_tags, remove_spans, repair_bio, split_words
from domainfit.data.types import Example
from domainfit.core.errors import ConfigError, DataError, DomainfitError
from domainfit.tasks import get_task, pair_variant
from domainfit.tasks.retrieval import ranking_metrics
from domainfit.tasks.token import entity_metrics
from helpers import (TOPICS, fast_settings, run_cli, write_ner_data, write_pair_data, write_retrieval_data,
                     write_task_data)

NER = "token-classification"


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# --- token-classification data -------------------------------------------------------------------

def test_three_input_shapes_give_the_same_words_and_tags(tmp_path):
    tokens = _jsonl(tmp_path / "t.jsonl", [{"tokens": ["Anna", "lives", "in", "New", "York"],
                                            "tags": ["B-PER", "O", "O", "B-LOC", "I-LOC"]}])
    conll = tmp_path / "t.conll"
    conll.write_text("-DOCSTART- O\n\nAnna NNP B-PER\nlives VBZ O\nin IN O\nNew NNP B-LOC\nYork NNP I-LOC\n\n",
                     encoding="utf-8")
    spans = _jsonl(tmp_path / "s.jsonl", [{"text": "Anna lives in New York",
                                           "spans": [{"start": 0, "end": 4, "label": "PER"},
                                                     {"start": 14, "end": 22, "label": "LOC"}]}])
    loaded = [load_dataset(p, task=NER).examples[0] for p in (tokens, conll, spans)]
    for example in loaded:
        assert example.tokens == ["Anna", "lives", "in", "New", "York"]
        assert example.label == ["B-PER", "O", "O", "B-LOC", "I-LOC"]
        assert [example.text[s:e] for s, e in example.offsets] == example.tokens
    assert loaded[1].line == 3  # the sentence's first token line
    assert loaded[2].offsets[3] == (14, 17)  # offsets into the user's own text


def test_a_span_inside_a_word_cuts_the_word():
    example = load_dataset([{"text": "NewYork rocks", "spans": [{"start": 0, "end": 3, "label": "LOC"}]}],
                           task=NER).examples[0]
    assert example.tokens == ["New", "York", "rocks"] and example.label == ["B-LOC", "O", "O"]


def test_chinese_characters_are_words_of_their_own():
    assert [t for t in ("我在北京工作"[s:e] for s, e in split_words("我在北京工作"))] == list("我在北京工作")
    assert [("year 1966"[s:e]) for s, e in split_words("year 1966")] == ["year", "1966"]
    assert [("ab 12"[s:e]) for s, e in split_words("ab 12", "chars")] == ["a", "b", "1", "2"]


def test_removing_words_keeps_the_rest_of_the_text_as_written():
    text = "Profit rose,  sharply; sales fell"
    spans = split_words(text)
    words = [text[s:e] for s, e in spans]
    assert remove_spans(text, [spans[words.index("rose")]]) == "Profit,  sharply; sales fell"
    assert remove_spans(text, [spans[words.index(",")]]) == "Profit rose sharply; sales fell"
    assert remove_spans(text, [spans[i] for i in (0, 1, 2)]) == "sharply; sales fell"
    assert remove_spans(text, spans) == "" and remove_spans(text, []) == text
    assert remove_spans("a,b", [(1, 2)]) == "a b"  # two words never run together
    chinese = "我要取消这个订单"
    assert remove_spans(chinese, [split_words(chinese)[1]]) == "我取消这个订单"  # no space put into Chinese


def test_bad_token_rows_are_reported_with_their_lines(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [
        {"tokens": ["a", "b"], "tags": ["O", "O"]},
        {"tokens": ["a", "b", "c"], "tags": ["O", "O"]},
        {"tokens": ["a", "b"], "tags": ["O", "I-PER"]},
        {"text": "Anna", "spans": [{"start": 2, "end": 9, "label": "PER"}]},
        {"text": "Anna Berg", "spans": [{"start": 0, "end": 4, "label": "PER"}, {"start": 2, "end": 9, "label": "X"}]},
        {"tokens": ["a"], "tags": ["PER"]},
    ])
    with pytest.raises(DataError) as err:
        load_dataset(path, task=NER)
    by_line = {p.line: p.reason for p in err.value.problems}
    assert "3 tokens but 2 tags" in by_line[2]
    assert "tag 2 'I-PER' follows 'O'" in by_line[3] and "B-PER" in by_line[3]
    assert "outside the text" in by_line[4]
    assert "overlap" in by_line[5]
    assert "not BIO" in by_line[6]
    assert 1 not in by_line
    kept = load_dataset(path, task=NER, on_bad_rows="skip")
    assert len(kept) == 1 and len(kept.skipped) == 5


def test_conll_problems_name_the_file_line_of_the_tag(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Anna B-PER\nlives O\n\nin O\nOslo I-LOC\n\nlonely\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_dataset(path, task=NER)
    reasons = {p.line: p.reason for p in err.value.problems}
    assert "file line 5" in reasons[4]
    assert "found one column" in reasons[7]


def test_bio_helpers():
    assert check_bio(["B-PER", "I-PER", "O", "B-LOC"]) == []
    assert repair_bio(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]) == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC",
                                                                              "B-PER"]
    assert entities_from_tags(["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4),
                                                                              ("LOC", 4, 5)]


def test_entity_metrics_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    m = entity_metrics(gold, pred)
    # gold: PER(0,2) LOC(3,4) ORG(0,1); predicted: PER(0,2) ORG(0,1) LOC(1,2) -> 2 of 3 right both ways
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 1}
    assert m["token_accuracy"] == pytest.approx(4 / 6)


def test_entity_metrics_agree_with_seqeval():
    import random

    from seqeval.metrics import f1_score, precision_score, recall_score

    rng = random.Random(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
    gold = [repair_bio([rng.choice(tags) for _ in range(rng.randint(1, 12))]) for _ in range(200)]
    pred = [repair_bio([t if rng.random() < 0.7 else rng.choice(tags) for t in g]) for g in gold]
    m = entity_metrics(gold, pred)
    assert m["precision"] == pytest.approx(precision_score(gold, pred))
    assert m["recall"] == pytest.approx(recall_score(gold, pred))
    assert m["f1"] == pytest.approx(f1_score(gold, pred))


def test_token_labels_keep_o_first_and_pair_b_i():
    task = get_task(NER)
    assert task.label_list([["B-LOC", "O"], ["B-PER", "I-PER"]]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_long_sentences_are_windowed_not_truncated(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    words = ["anna", "lives", "in", "oslo"] * 12  # 'anna', 'oslo'... are several sub-words each
    tags = ["B-PER", "O", "O", "B-LOC"] * 12
    task = get_task(NER)
    labels = task.label_list([tags])
    enc = task.encode_examples(tokenizer, [Example(" ".join(words), tags, tokens=words)], labels, max_length=16)
    assert len(enc) > 3 and all(len(row) <= 16 for row in enc.input_ids)
    covered = [w.first_word + k for w in enc.windows for k, pos in enumerate(w.positions) if pos is not None]
    assert covered == list(range(len(words)))  # every word, once, in order
    first_ids = [labels.index(t) for t in tags]
    targets = [t for row in enc.targets for t in row if t != -100]
    assert targets == first_ids  # exactly one target per word: the first sub-word's


# --- token-classification training ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["full", "lora"])
def test_ner_trains_predicts_spans_and_round_trips(tmp_path, tiny_model, method):
    data = write_ner_data(tmp_path, copies=2)
    out = tmp_path / "ner"
    result = domainfit.train(output=str(out), model=str(tiny_model), task=NER,
                             **fast_settings(**{"data.train": str(data), "data.eval": str(data),
                                                "method.name": method, "training.epochs": 12}))
    assert result.eval_metrics["f1"] >= 0.9
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["model"]["kind"] == "token" and manifest["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    model = domainfit.load(out)
    text = "maria lives in  paris"
    pred = model.predict(text)[0]
    assert [(e["label"], e["text"]) for e in pred["entities"]] == [("PER", "maria"), ("LOC", "paris")]
    assert all(text[e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1 for e in pred["entities"])
    assert domainfit.evaluate(out, str(data))["f1"] == pytest.approx(result.eval_metrics["f1"])
    assert model.predict(["   "])[0] == {"tags": [], "tokens": [], "entities": []}  # nothing to tag
    report = (out / "report" / "report.md").read_text()
    assert "Per entity type" in report and f"line number in `{data}`" in report
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nmaria lives in  paris\nmy card is in paris with maria\n", encoding="utf-8")
    from domainfit.inference import predict_file
    import csv
    assert predict_file(out, texts, tmp_path / "entities.csv") == 2  # texts, one row per entity in them
    with open(tmp_path / "entities.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["text"], r["start"], r["end"], r["type"]) for r in rows] == [
        ("2", "maria", "0", "5", "PER"), ("2", "paris", "16", "21", "LOC"),
        ("3", "paris", "14", "19", "LOC"), ("3", "maria", "25", "30", "PER")]
    assert all(0 < float(r["score"]) <= 1 for r in rows)


def test_case_markers_let_an_uncased_model_see_capitals(tmp_path):
    from conftest import make_tiny_model
    from domainfit.tasks.token import CASE_MARKERS, TokenClassificationTask, case_marker_ids

    marked_model = make_tiny_model(tmp_path / "base", extra_tokens=CASE_MARKERS)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(marked_model))
    title, upper = case_marker_ids(tokenizer)
    task = get_task(NER).for_tokenizer(tokenizer)
    assert task.case_markers and task.variant == "case-markers"
    assert get_task(NER).for_tokenizer(tokenizer, enabled=False).case_markers is False
    # a word with a capital gets its marker after its own pieces; the loss ignores the marker
    examples = [Example(text="my Card is ATM", tokens=("my", "Card", "is", "ATM"),
                        label=["B-PER", "O", "O", "B-LOC"], line=1)]
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    enc = task.encode_examples(tokenizer, examples, labels, 64)
    words = [tokenizer.convert_tokens_to_ids(w) for w in ("my", "card", "is", "atm")]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert enc.input_ids[0] == [cls, words[0], words[1], title, words[2], words[3], upper, sep]
    assert enc.targets[0] == [-100, 3, 0, -100, 0, 1, -100, -100]
    assert TokenClassificationTask().encode_examples(tokenizer, examples, labels, 64).input_ids[0] == [
        cls, *words, sep]
    # a cased tokenizer, or a vocabulary without the spare tokens: no markers
    assert case_marker_ids(AutoTokenizer.from_pretrained(str(make_tiny_model(tmp_path / "plain")))) is None

    # "Paris" the city, "paris" a word that is not one: only capitals tell them apart
    rows = []
    for person in ("anna", "paul", "peter"):
        rows.append({"tokens": ["i", "saw", person, "in", "Paris"], "tags": ["O", "O", "O", "O", "B-LOC"]})
        rows.append({"tokens": ["i", "saw", person, "in", "paris"], "tags": ["O", "O", "O", "O", "O"]})
        rows.append({"tokens": ["Rome", "is", "where", person, "is"], "tags": ["B-LOC", "O", "O", "O", "O"]})
        rows.append({"tokens": ["rome", "is", "where", person, "is"], "tags": ["O", "O", "O", "O", "O"]})
    data = _jsonl(tmp_path / "case.jsonl", rows * 3)
    scores = {}
    for markers in (True, False):
        out = tmp_path / f"markers-{markers}"
        result = domainfit.train(output=str(out), model=str(marked_model), task=NER, **fast_settings(**{
            "data.train": str(data), "data.eval": str(data), "training.epochs": 15, "training.case_markers": markers}))
        scores[markers] = result.eval_metrics["f1"]
        assert result.manifest.get("task_variant") == ("case-markers" if markers else None)
    assert scores[True] == 1.0 and scores[False] < 0.8
    model = domainfit.load(tmp_path / "markers-True")  # the variant comes back from the manifest
    assert model.task.case_markers
    found = [[e["text"] for e in p["entities"]] for p in model.predict(["i saw anna in Paris", "i saw anna in paris"])]
    assert found == [["Paris"], []]
    from domainfit.export import export_model
    export_model(tmp_path / "markers-True", tmp_path / "onnx")  # its parity check runs the markers too
    exported = domainfit.load(tmp_path / "onnx")
    assert exported.backend == "onnx" and exported.task.case_markers
    again = exported.predict(["i saw anna in Paris", "i saw anna in paris"])
    assert [[e["text"] for e in p["entities"]] for p in again] == found


def test_chinese_ner_uses_character_words(tmp_path, tiny_model):
    rows = [{"tokens": list("我的卡丢了"), "tags": ["O", "O", "B-ITEM", "O", "O"]},
            {"tokens": list("退款密码"), "tags": ["B-ACT", "I-ACT", "O", "O"]}] * 12
    data = _jsonl(tmp_path / "zh.jsonl", rows)
    out = tmp_path / "zh"
    domainfit.train(output=str(out), model=str(tiny_model), task=NER,
                    **fast_settings(**{"data.train": str(data), "training.epochs": 15}))
    model = domainfit.load(out)
    assert model.manifest["model"]["word_split"] == "chars"
    pred = model.predict("我的卡丢了")[0]
    assert pred["tokens"] == list("我的卡丢了")
    assert [(e["label"], e["start"], e["end"]) for e in pred["entities"]] == [("ITEM", 2, 3)]


def test_token_training_without_entities_is_refused(tmp_path, tiny_model):
    data = _jsonl(tmp_path / "o.jsonl", [{"tokens": ["a", "b"], "tags": ["O", "O"]}] * 5)
    with pytest.raises(DataError, match="no word of the training data is tagged"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), task=NER, **{"data.train": str(data)})


def test_token_classification_trains_with_its_own_measured_defaults(tmp_path, tiny_model):
    assert get_task(NER).training_defaults == {"training.label_smoothing": 0.0}  # WNUT-17: docs/training.md
    data = write_ner_data(tmp_path)
    common = {"model": str(tiny_model), "task": NER, "data.train": str(data), "training.epochs": 1}
    plain = domainfit.train(output=str(tmp_path / "plain"), **common)
    assert plain.manifest["config"]["training"]["label_smoothing"] == 0.0
    # what the user sets wins: a keyword (or --set), and a YAML file
    mine = domainfit.train(output=str(tmp_path / "mine"), **common, **{"training.label_smoothing": 0.2})
    assert mine.manifest["config"]["training"]["label_smoothing"] == 0.2
    config = tmp_path / "run.yaml"
    config.write_text("training:\n  label_smoothing: 0.3\n", encoding="utf-8")
    from_yaml = domainfit.train(str(config), output=str(tmp_path / "yaml"), **common)
    assert from_yaml.manifest["config"]["training"]["label_smoothing"] == 0.3
    # a classifier keeps its method's default
    text = domainfit.train(output=str(tmp_path / "text"), model=str(tiny_model), method="full",
                           **{"data.train": str(write_task_data(tmp_path, "classification")), "training.epochs": 1})
    assert text.manifest["config"]["training"]["label_smoothing"] == 0.1


@pytest.mark.integration
def test_ner_cli_train_and_evaluate_json(tmp_path, tiny_model):
    data = write_ner_data(tmp_path, copies=2)
    out = tmp_path / "cli-ner"
    done = run_cli("train", "--task", NER, "--data", str(data), "--eval-data", str(data), "--output", str(out),
                   "--model", str(tiny_model), "--set", "training.epochs=3", "--set", "training.learning_rate=3e-3")
    assert done.returncode == 0, done.stderr + done.stdout
    shown = run_cli("evaluate", str(out), "--data", str(data), "--json")
    assert shown.returncode == 0, shown.stderr
    metrics = json.loads(shown.stdout)
    assert {"precision", "recall", "f1", "token_accuracy", "per_type"} <= set(metrics)
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nanna lives in oslo\n", encoding="utf-8")
    preds = tmp_path / "preds.jsonl"
    assert run_cli("predict", str(out), "--data", str(texts), "--output", str(preds)).returncode == 0
    record = json.loads(preds.read_text().splitlines()[0])
    assert record["text"] == "anna lives in oslo" and isinstance(record["entities"], list)


# --- pairs ---------------------------------------------------------------------------------------

def test_pair_variant_follows_the_labels():
    assert pair_variant(["yes", "no"]) == "classification"
    assert pair_variant(["0", "1", "1"]) == "probability"
    assert pair_variant(["0.5", "4.5"]) == "score"


def test_pair_task_needs_a_second_text_column(tmp_path, tiny_model):
    with pytest.raises(ConfigError, match="--text-pair-column"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), task="pair",
                        **{"data.train": str(write_pair_data(tmp_path))})


PAIR_COLUMNS = {"data.text_column": "a", "data.text_pair_column": "b"}


def _pair_probe():
    queries = [q for queries, _ in TOPICS.values() for q in queries]
    right = [TOPICS[t][1] for t in TOPICS for _ in TOPICS[t][0]]
    wrong = [TOPICS["fee"][1] if t != "fee" else TOPICS["card"][1] for t in TOPICS for _ in TOPICS[t][0]]
    return queries, right, wrong


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory, tiny_model):
    """A cross-encoder that learned which document answers which query (shared: it takes a while)."""
    folder = tmp_path_factory.mktemp("pair")
    out = folder / "pair"
    domainfit.train(output=str(out), model=str(tiny_model), task="pair",
                    **fast_settings(**{"data.train": str(write_pair_data(folder)), **PAIR_COLUMNS,
                                       "training.epochs": 30}))
    return out


def test_pair_model_learns_which_document_answers(pair_model):
    model = domainfit.load(pair_model)
    assert model.manifest["task_variant"] == "classification" and model.labels == ["no", "yes"]
    queries, right, wrong = _pair_probe()
    good, bad = model.pair_scores(queries, right), model.pair_scores(queries, wrong)
    assert sum(g > b for g, b in zip(good, bad)) >= 15
    preds = model.predict(queries[:2], right[:2])
    assert [p["label"] for p in preds] == ["yes", "yes"]
    with pytest.raises(DomainfitError, match="pairs"):
        model.predict(["only one text"])


@pytest.mark.parametrize("kind,method", [("classes", "lora"), ("probability", "full"), ("score", "full")])
def test_pair_variants_round_trip(tmp_path, tiny_model, kind, method):
    out = tmp_path / f"pair-{kind}"
    result = domainfit.train(output=str(out), model=str(tiny_model), task="pair",
                             **fast_settings(**{"data.train": str(write_pair_data(tmp_path, kind)),
                                                "data.eval": str(write_pair_data(tmp_path, kind)), **PAIR_COLUMNS,
                                                "method.name": method, "training.epochs": 2}))
    variant = {"classes": "classification", "probability": "probability", "score": "score"}[kind]
    assert result.manifest["task_variant"] == variant
    assert result.eval_metrics["primary_metric"] == ("accuracy" if kind == "classes" else "spearman")
    if kind == "probability":
        assert {"roc_auc", "accuracy", "spearman"} <= set(result.eval_metrics)
    queries, right, _ = _pair_probe()
    result.model.eval()
    from domainfit.inference import Predictor

    loaded = domainfit.load(out)
    live = Predictor.__new__(Predictor)
    live.__dict__.update(loaded.__dict__, model=result.model)
    scores = loaded.pair_scores(queries, right)
    assert scores == pytest.approx(live.pair_scores(queries, right), abs=1e-5)
    if kind != "score":
        assert all(0 <= v <= 1 for v in scores)


# --- retrieval -----------------------------------------------------------------------------------

def test_ranking_metrics_by_hand():
    m = ranking_metrics([[5, 1, 2], [7, 8, 9], [3]], [{1, 2}, {4}, {3}])
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@5"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((0.5 + 0 + 1) / 3)
    ideal = 1 + 1 / torch.log2(torch.tensor(3.0)).item()
    dcg = 1 / torch.log2(torch.tensor(3.0)).item() + 1 / 2
    assert m["ndcg@10"] == pytest.approx((dcg / ideal + 0 + 1) / 3)


def test_in_batch_copies_of_a_positive_are_not_negatives():
    task = get_task("retrieval")
    logits = torch.tensor([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    same_doc = torch.tensor([[0], [0], [1]])  # rows 0 and 1 share their positive
    other_doc = torch.tensor([[0], [1], [2]])
    assert task.loss(logits, same_doc) < 0.01 < task.loss(logits, other_doc)


def test_retrieval_split_keeps_documents_on_one_side():
    from domainfit.tasks.retrieval import split_by_positive

    examples = [Example(q, text_pair=doc) for queries, doc in TOPICS.values() for q in queries]
    train, val = split_by_positive(examples, 0.25, seed=1)
    assert val and train
    assert not {e.text_pair for e in train} & {e.text_pair for e in val}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_retrieval_trains_indexes_and_searches(tmp_path, tiny_model, method):
    pairs, corpus = write_retrieval_data(tmp_path)
    out = tmp_path / "faq"
    result = domainfit.train(output=str(out), model=str(tiny_model), task="retrieval",
                             **fast_settings(**{"data.train": str(pairs), "data.validation": str(pairs),
                                                "data.text_column": "query", "data.text_pair_column": "positive",
                                                "data.hard_negatives": 1, "method.name": method,
                                                "training.epochs": 8 if method == "full" else 12}))
    assert result.manifest["model"]["kind"] == "embedding"
    model = domainfit.load(out)
    vectors = model.embed(["where is my card", "refund my order"])
    assert vectors.shape == (2, 32) and abs(float((vectors ** 2).sum(1)[0]) - 1) < 1e-5
    domainfit.build_index(out, str(corpus))
    assert (out / "index" / "index.json").is_file() and not list(out.glob(".index*"))
    hits = domainfit.load(out).search("my card has not arrived yet", k=2)
    assert len(hits) == 2 and hits[0]["score"] >= hits[1]["score"] and {"id", "text", "topic"} <= set(hits[0])
    queries = [{"query": q, "positive": f"d-{t}"} for t, (qs, _) in TOPICS.items() for q in qs]
    metrics = domainfit.evaluate(out, queries)
    # LoRA on the random tiny encoder plateaus lower (0.81 measured) than full fine-tuning (1.0).
    assert metrics["recall@1"] >= (0.9 if method == "full" else 0.75) and metrics["mrr@10"] >= metrics["recall@1"]
    if method == "full":
        assert hits[0]["id"] == "d-card" and hits[0]["topic"] == "card"


def test_zeroshot_retrieval_is_the_encoder_as_it_comes(tmp_path, tiny_model):
    from domainfit.modeling import EmbeddingModel, build_encoder
    from domainfit.modeling import embed_texts

    pairs, corpus = write_retrieval_data(tmp_path)
    out = tmp_path / "untuned"
    result = domainfit.train(output=str(out), model=str(tiny_model), task="retrieval", **{"method.name": "zeroshot"},
                             **{"data.eval": str(pairs), "data.text_column": "query",
                                "data.text_pair_column": "positive"})
    assert result.manifest["method"]["trainable_parameters"] == 0 and "recall@1" in result.eval_metrics
    assert not (out / "model.safetensors").exists()  # only the reference to the base model
    model = domainfit.load(out)
    texts = ["where is my card", "refund my order"]
    from transformers import AutoTokenizer

    direct = embed_texts(EmbeddingModel(build_encoder(str(tiny_model))).eval(),
                         AutoTokenizer.from_pretrained(str(tiny_model)), texts, 64)
    assert np.allclose(model.embed(texts), direct, atol=1e-5)
    domainfit.build_index(out, str(corpus))
    assert len(domainfit.load(out).search("where is my card", k=2)) == 2
    with pytest.raises(ConfigError, match="as it comes"):
        domainfit.train(output=str(tmp_path / "x"), model=str(tiny_model), task="retrieval", **{"method.name": "zeroshot"},
                        **{"data.train": str(pairs)})


def test_reranking_with_a_pair_model(tmp_path, tiny_model, pair_model):
    pairs, corpus = write_retrieval_data(tmp_path)
    retriever, reranker = tmp_path / "bi", pair_model
    # An untrained retriever (one step at learning rate ~0) ranks badly; the pair model fixes the order.
    domainfit.train(output=str(retriever), model=str(tiny_model), task="retrieval",
                    **{"data.train": str(pairs), "data.text_column": "query", "data.text_pair_column": "positive",
                       "training.epochs": 0.01, "training.learning_rate": 1e-9})
    domainfit.build_index(retriever, str(corpus))
    queries = [{"query": q, "positive": f"d-{t}"} for t, (qs, _) in TOPICS.items() for q in qs]
    plain = domainfit.evaluate(retriever, queries)
    reranked = domainfit.evaluate(retriever, queries, rerank=reranker, candidates=4)
    assert reranked["recall@1"] >= 0.9 > plain["recall@1"]
    hits = domainfit.load(retriever).search("where is my card", k=1, rerank=reranker, candidates=4)
    assert hits[0]["id"] == "d-card"
    with pytest.raises(DomainfitError, match="does not search: use domainfit predict"):
        domainfit.load(reranker).search("where is my card")  # a pair model: not "build an index", which refuses


@pytest.mark.integration
def test_index_and_search_cli(tmp_path, tiny_model):
    pairs, corpus = write_retrieval_data(tmp_path)
    out = tmp_path / "faq"
    domainfit.train(output=str(out), model=str(tiny_model), task="retrieval",
                    **fast_settings(**{"data.train": str(pairs), "data.validation": str(pairs),
                                       "data.text_column": "query", "data.text_pair_column": "positive",
                                       "training.epochs": 8}))
    done = run_cli("index", str(out), "--corpus", str(corpus))
    assert done.returncode == 0 and "Indexed 4 documents" in done.stderr, done.stderr
    found = run_cli("search", str(out), "refund my order please", "-k", "3", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and hits[0]["id"] == "d-refund"
    assert run_cli("search", str(out), "   ").returncode == 2


def test_corpus_problems_are_reported(tmp_path, tiny_model):
    pairs, _ = write_retrieval_data(tmp_path)
    out = tmp_path / "faq"
    domainfit.train(output=str(out), model=str(tiny_model), task="retrieval",
                    **{"data.train": str(pairs), "data.text_column": "query", "data.text_pair_column": "positive",
                       "training.epochs": 0.01})
    dupes = tmp_path / "dupes.csv"
    dupes.write_text("id,text\na,first\nb,\na,third\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        domainfit.build_index(out, str(dupes))
    reasons = {p.line: p.reason for p in err.value.problems}
    assert "empty" in reasons[3] and "used twice (first on line 2)" in reasons[4]
    empty = tmp_path / "empty.csv"
    empty.write_text("id,text\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        domainfit.build_index(out, str(empty))
    with pytest.raises(DomainfitError, match="no index"):
        domainfit.load(out).search("card")
    classifier = tmp_path / "clf"
    domainfit.train(output=str(classifier), model=str(tiny_model),
                    **{"data.train": str(write_task_data(tmp_path, "classification")), "training.epochs": 0.1})
    with pytest.raises(DomainfitError, match="needs a retrieval model"):
        domainfit.build_index(classifier, str(dupes))


def test_methods_for_one_task_only_are_refused(tmp_path, tiny_model):
    with pytest.raises(ConfigError, match="fewshot works for"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), task=NER,
                        **{"data.train": str(write_ner_data(tmp_path)), "method.name": "fewshot"})


def test_faiss_backend_finds_the_same_documents(tmp_path, tiny_model):
    pytest.importorskip("faiss")
    pairs, corpus = write_retrieval_data(tmp_path)
    out = tmp_path / "faq"
    domainfit.train(output=str(out), model=str(tiny_model), task="retrieval",
                    **fast_settings(**{"data.train": str(pairs), "data.validation": str(pairs),
                                       "data.text_column": "query", "data.text_pair_column": "positive",
                                       "training.epochs": 2}))
    domainfit.build_index(out, str(corpus), backend="exact")
    exact = domainfit.load(out).search(["where is my card", "refund please"], k=4)
    domainfit.build_index(out, str(corpus), backend="faiss")
    assert json.loads((out / "index" / "index.json").read_text())["backend"] == "faiss"
    approx = domainfit.load(out).search(["where is my card", "refund please"], k=4)
    assert [[h["id"] for h in row] for row in approx] == [[h["id"] for h in row] for row in exact]
    assert [h["score"] for row in approx for h in row] == pytest.approx(
        [h["score"] for row in exact for h in row], abs=1e-4)


def test_a_training_run_says_what_it_trains():
    from domainfit.tasks import get_task

    assert get_task("classification").what_is_trained(["a", "b", "c"]) == "a head with 3 output(s)"
    said = get_task("retrieval").what_is_trained([])
    assert "bi-encoder" in said and "in-batch negatives" in said and "output" not in said
