"""Shared fixtures: a tiny BERT (2 layers, hidden 32) and a tiny tokenizer, built here.

No package model is needed: the model folder is written from a config with random
weights, so every test runs offline in seconds.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test-fast` runs one worker per core: the tiny models gain nothing from a second
    # thread, and two workers with two threads each would only take turns on the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

WORDS = """card arrive arrived arrival lost stolen where is my the a i want to cancel order refund money back
password reset forgot login account balance how much transfer failed send payment delivery package when will
open hours branch close speak agent human person phone number change update address new please help not yet
still waiting week weeks days broken pin blocked fee charge exchange rate euro dollar cash atm top up""".split()


def make_tiny_model(folder: Path, *, dropout: float = 0.1, seed: int = 0, extra_tokens: tuple[str, ...] = ()) -> Path:
    """Write a 2-layer, hidden-32 BERT and a word-level WordPiece tokenizer (lowercasing, with
    ``extra_tokens`` at the end of its vocabulary) into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789?!.,'") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    chars += list("我的卡丢了退款密码")
    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + WORDS + chars + list(extra_tokens)))}
    # transformers 5 takes the vocabulary as `vocab`; a `vocab_file=` keyword is silently ignored.
    tok = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=64)
    tok.save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def served_models(tmp_path_factory, tiny_model) -> list[Path]:
    """Two small trained classifiers for the server tests (different seeds, so that their
    versions can be told apart)."""
    import domainfit
    from helpers import fast_settings, write_task_data

    folder = tmp_path_factory.mktemp("served")
    data = write_task_data(folder, "classification")
    out = []
    for seed in (1, 2):
        path = folder / f"m{seed}"
        domainfit.train(output=str(path), model=str(tiny_model),
                        **fast_settings(**{"data.train": str(data), "training.seed": seed, "training.epochs": 4}))
        out.append(path)
    return out


@pytest.fixture(scope="session")
def tiny_model_no_dropout(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert-nodrop"), dropout=0.0)


INTENTS = {
    "card_arrival": ["where is my card", "my card has not arrived", "when will my card arrive", "still waiting for card"],
    "refund": ["i want a refund", "money back please", "refund my order", "how to get money back"],
    "password": ["forgot my password", "reset password please", "i can not login", "password reset help"],
}


def write_intents_csv(path: Path, per_class: int = 12, seed: int = 0) -> Path:
    """A small, learnable three-intent CSV (text,label)."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for label, phrases in INTENTS.items():
        for i in range(per_class):
            words = rng.choice(phrases).split()
            if i % 3 == 0:
                words.append(rng.choice(["please", "help", "now", "yet"]))
            lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def intents_csv(tmp_path) -> Path:
    return write_intents_csv(tmp_path / "intents.csv")


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, tiny_model):
    """A 2-layer Llama with the tiny tokenizer (no chat template: the plain prompt is used)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-lm")
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.save_pretrained(str(folder))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


def pytest_collection_modifyitems(config, items):
    """Every test is in exactly one tier: ``integration`` where it says so (subprocesses,
    DDP, SIGKILL, a real server or browser), ``unit`` otherwise (`make test-fast` runs those)."""
    for item in items:
        if item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)
        elif item.get_closest_marker("unit") is not None:
            raise pytest.UsageError(f"{item.nodeid} is marked both unit and integration")
