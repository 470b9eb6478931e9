"""Continued pre-training: reading unlabelled text, whole-word masking, vocabulary extension,
and a base-model folder that training then starts from."""

from __future__ import annotations

import json

import pytest
import torch

import domainfit
from domainfit.core.errors import ConfigError, DataError, DomainfitError
from domainfit.data.masking import mask_whole_words, read_texts
from domainfit.run.pretrain import pretrain
from helpers import fast_settings, run_cli, write_task_data

CHINESE = ["这家店的外卖很好吃", "送餐太慢了再也不点", "味道不错下次还来", "菜凉了而且很咸", "包装很好送得也快"]


def _tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def test_read_texts_from_files_and_folders(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("first text\n\nsecond text\n", encoding="utf-8")
    (tmp_path / "d" / "b.csv").write_text("body,x\nthird text,1\n,2\n", encoding="utf-8")
    (tmp_path / "d" / "notes.md").write_text("ignored", encoding="utf-8")
    with pytest.raises(DataError, match="no column 'text'"):
        read_texts(tmp_path / "d")
    texts, digest, files = read_texts(tmp_path / "d", text_column="body")
    assert texts == ["first text", "second text", "third text"] and len(files) == 2 and len(digest) == 64
    with pytest.raises(DataError, match="no such file or folder"):
        read_texts(tmp_path / "missing")
    (tmp_path / "empty.txt").write_text("\n \nx\n", encoding="utf-8")
    with pytest.raises(DataError, match="no usable text"):
        read_texts(tmp_path / "empty.txt")


def test_read_texts_from_a_token_classification_file(tmp_path):
    """An NER training file pre-trains as it is: its word lists are the texts."""
    path = tmp_path / "ner.jsonl"
    path.write_text('{"tokens": ["高", "勇", "：", "男"], "tags": ["B-NAME", "I-NAME", "O", "O"]}\n'
                    '{"tokens": ["Paris", "is", "big"], "tags": ["B-LOC", "O", "O"]}\n'
                    '{"tokens": [], "tags": []}\n', encoding="utf-8")
    texts, _, _ = read_texts(path)
    assert texts == ["高 勇 ： 男", "Paris is big"]
    with pytest.raises(DataError, match="no column 'body'"):
        read_texts(path, text_column="body")


def test_whole_word_masking_masks_every_piece_of_a_chosen_word(tiny_model):
    tokenizer = _tokenizer(tiny_model)
    texts = ["where is my card " * 6, "refund money back please"]
    encoded = mask_whole_words(tokenizer, texts, max_length=16, copies=3, seed=0, mask_share=0.3)
    plain = tokenizer(texts, add_special_tokens=False)
    windows = sum(-(-len(ids) // 14) for ids in plain["input_ids"])  # 16 minus [CLS] and [SEP]
    assert len(encoded) == 3 * windows and all(len(row) <= 16 for row in encoded.input_ids)
    masked = 0
    for ids, target in zip(encoded.input_ids, encoded.targets):
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert target[0] == target[-1] == -100
        for k, t in enumerate(target):
            if t != -100:
                masked += 1
                assert ids[k] in (tokenizer.mask_token_id, t) or ids[k] not in tokenizer.all_special_ids
    assert masked > 0
    # a word cut into pieces is masked whole: the tiny vocabulary spells unknown words with ##pieces
    pieces = mask_whole_words(tokenizer, ["zqx"] * 20, max_length=16, copies=1, seed=1, mask_share=0.5)
    for target in pieces.targets:
        inner = target[1:-1]
        assert all(t != -100 for t in inner) or all(t == -100 for t in inner)
    # seeded: the same masks again
    again = mask_whole_words(tokenizer, texts, max_length=16, copies=3, seed=0, mask_share=0.3)
    assert again.input_ids == encoded.input_ids and again.targets == encoded.targets


def test_pretrain_extends_the_vocabulary_and_training_starts_from_the_result(tmp_path, tiny_model):
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(CHINESE * 12 + ["where is my card", "refund my order please"] * 10) + "\n",
                     encoding="utf-8")
    before = _tokenizer(tiny_model)
    result = pretrain(texts, tmp_path / "base", model=str(tiny_model), steps=8, extend_vocab=True,
                      batch_size=8, learning_rate=5e-3)
    record = json.loads((tmp_path / "base" / "pretrain.json").read_text(encoding="utf-8"))
    assert record == result.record and record["training"]["steps"] == 8 and record["training"]["new_head"]
    vocab = record["vocabulary"]
    assert vocab["added_tokens"] > 10 and "好" in vocab["first_added"] and "卡" not in vocab["first_added"]
    assert vocab["unk_share_before"] > 0.3 and vocab["unk_share_after"] == 0.0
    assert record["validation"]["mlm_accuracy_after"] is not None
    assert not (tmp_path / "base" / "checkpoints").exists() and not (tmp_path / "base" / "run.json").exists()
    # the folder is a base model: its tokenizer reads the new pieces, training starts from it
    after = _tokenizer(tmp_path / "base")
    assert len(after) == len(before) + vocab["added_tokens"]
    assert after.unk_token_id not in after("好吃", add_special_tokens=False)["input_ids"]
    from domainfit.modeling import build_encoder
    from safetensors.torch import load_file

    encoder = build_encoder(str(tmp_path / "base"))  # every weight loads (only the pooler is new)
    saved = load_file(str(tmp_path / "base" / "model.safetensors"))
    assert torch.equal(encoder.embeddings.word_embeddings.weight, saved["bert.embeddings.word_embeddings.weight"])
    assert encoder.embeddings.word_embeddings.weight.shape[0] == len(after)
    rows = tmp_path / "zh.csv"
    rows.write_text("text,label\n" + "".join(f"{t},{'pos' if i % 2 == 0 else 'neg'}\n"
                                             for _ in range(4) for i, t in enumerate(CHINESE)), encoding="utf-8")
    trained = domainfit.train(output=str(tmp_path / "clf"), model=str(tmp_path / "base"),
                              **fast_settings(**{"data.train": str(rows), "training.epochs": 1}))
    assert trained.manifest["data"]["train"]["unk_share"] == 0.0
    assert not any("[UNK]" in w for w in trained.manifest["warnings"])


def test_pretrain_refuses_what_it_cannot_do(tmp_path, tiny_model, tiny_lm):
    texts = tmp_path / "t.txt"
    texts.write_text("where is my card\nrefund my order\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="has no masked-language-model form"):
        pretrain(texts, tmp_path / "lm", model=str(tiny_lm), steps=1)
    with pytest.raises(ConfigError, match="--steps must be at least 1"):
        pretrain(texts, tmp_path / "x", model=str(tiny_model), steps=0)
    done = pretrain(texts, tmp_path / "ok", model=str(tiny_model), steps=2, batch_size=2)
    assert done.record["validation"]["mlm_accuracy_after"] is None  # too few texts to hold any out
    with pytest.raises(DomainfitError, match="not empty"):
        pretrain(texts, tmp_path / "ok", model=str(tiny_model), steps=2, batch_size=2)


@pytest.mark.integration
def test_pretrain_cli(tmp_path, tiny_model):
    data = write_task_data(tmp_path, "classification")
    done = run_cli("pretrain", "--data", str(data), "--output", str(tmp_path / "base"), "--model", str(tiny_model),
                   "--steps", "4", "--batch-size", "4")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Saved" in done.stderr + done.stdout and (tmp_path / "base" / "config.json").is_file()
    bad = run_cli("pretrain", "--data", str(tmp_path / "none.csv"), "--output", str(tmp_path / "b2"))
    assert bad.returncode == 2 and "none.csv" in bad.stderr + bad.stdout and "Traceback" not in bad.stderr
